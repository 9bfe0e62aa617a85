"""Every model that exposes its states computes the same function stepped as in its parallel (or chunked, or fused)
form, in float64 to a tight tolerance; the shared scans equal the loop they replace."""
import pytest
import torch

from suite.models import MODELS
from suite.models.parts import CausalConv, linear_scan, log_scan, scan_log_depth, scan_steps

STEPPABLE = sorted(m for m, cls in MODELS.items() if hasattr(cls, "unroll"))


def loop(a, b):
    state, out = torch.zeros_like(b[:, 0]), []
    for t in range(b.shape[1]):
        state = a[:, t] * state + b[:, t]
        out.append(state)
    return torch.stack(out, 1)


@pytest.mark.parametrize("T", [1, 2, 7, 64, 100])
def test_the_linear_scan_and_the_log_scan_equal_the_loop(T):
    g = torch.Generator().manual_seed(T)
    a, b = torch.rand(3, T, 5, 2, generator=g, dtype=torch.float64), torch.randn(3, T, 5, 2, generator=g,
                                                                               dtype=torch.float64)
    assert torch.allclose(linear_scan(a, b), loop(a, b), atol=1e-12)
    assert torch.allclose(scan_log_depth(a, b), loop(a, b), atol=1e-12)  # the GPU's form
    assert torch.allclose(scan_steps(a, b), loop(a, b), atol=1e-12)  # the CPU's
    assert torch.allclose(log_scan(a.log(), b.abs().log()), loop(a, b.abs()), atol=1e-10)
    lam = torch.rand(5, 2, generator=g, dtype=torch.float64)  # time-invariant: broadcast over batch and time
    assert torch.allclose(linear_scan(lam, b), loop(lam.expand_as(b), b), atol=1e-12)


def test_the_linear_scans_gradient_is_the_loops():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 9, 3, generator=g, dtype=torch.float64).requires_grad_()
    b = torch.randn(2, 9, 3, generator=g, dtype=torch.float64).requires_grad_()
    lam = torch.rand(3, generator=g, dtype=torch.float64).requires_grad_()  # broadcast over batch and time
    assert torch.autograd.gradcheck(linear_scan, (a, b)) and torch.autograd.gradcheck(linear_scan, (lam, b))
    z = torch.randn(2, 9, 3, generator=g, dtype=torch.complex128).requires_grad_()  # complex, as the LRU's
    w = (torch.rand(2, 9, 3, generator=g, dtype=torch.float64) * torch.exp(1j * torch.randn(2, 9, 3, generator=g,
         dtype=torch.float64))).requires_grad_()
    assert torch.autograd.gradcheck(linear_scan, (w, z))


def test_the_short_convolution_never_sees_a_later_step():
    conv = CausalConv(3, width=4).double()
    x = torch.randn(2, 10, 3, dtype=torch.float64)
    later = x.clone()
    later[:, 6:] += 1.0
    assert torch.equal(conv(x)[:, :6], conv(later)[:, :6]) and not torch.allclose(conv(x)[:, 6:], conv(later)[:, 6:])


@pytest.mark.parametrize("model", STEPPABLE)
def test_the_parallel_form_equals_the_stepped_recurrence(model):
    """readout(unroll(x)) = forward(x), for two stacked layers where the model stacks them: the states gradient
    flow measures are the ones the model computes with."""
    cls = MODELS[model]
    fields = set(cls.Config.__dataclass_fields__)
    cfg = cls.Config(hidden_size=16, **({"num_layers": 2} if "num_layers" in fields else {}))
    torch.manual_seed(0)
    net = cls(5, cfg).double().eval()
    x = torch.randn(3, 37, 5, dtype=torch.float64)
    with torch.no_grad():
        states = net.unroll(x)
        assert len(states) == 37 and all(s.shape[0] == 3 and s.dim() == 2 for s in states)  # (B, S) per step
        stepped, parallel = net.readout(torch.stack(states, 1)), net(x)
    assert stepped.shape == parallel.shape == (3, 37, 16)
    assert torch.allclose(stepped, parallel, atol=1e-6, rtol=1e-6), (stepped - parallel).abs().max()


@pytest.mark.parametrize("model", STEPPABLE)
def test_each_unrolled_state_feeds_the_next(model):
    """The last output's gradient reaches every state through the ones after it (a state appended but not carried
    would get the gradient of its own step only, and gradient flow would read zeros)."""
    cls = MODELS[model]
    torch.manual_seed(0)
    net = cls(5, cls.Config(hidden_size=8)).double().eval()
    states = net.unroll(torch.randn(2, 9, 5, dtype=torch.float64))
    for s in states:
        s.retain_grad()
    last = net.readout(torch.stack(states, 1))[:, -1]
    (last * torch.randn_like(last)).sum().backward()  # a random readout: a plain sum of a LayerNorm's output is 0
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in states[:-1])


def test_the_gpus_reversed_scan_is_the_cpus():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 11, 3, generator=g, dtype=torch.float64), torch.randn(2, 11, 3, generator=g,
                                                                             dtype=torch.float64)
    assert torch.allclose(scan_log_depth(a.flip(1), b.flip(1)).flip(1), scan_steps(a, b, reverse=True), atol=1e-12)
