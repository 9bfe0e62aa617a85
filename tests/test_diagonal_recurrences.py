"""minGRU, minLSTM, Hawk and S4D: each parallel form equals the paper's recurrence written out naively, and each
initialisation lands where its paper puts it."""
import math

import pytest
import torch

from suite.models.hawk import RGLRU, C, Hawk
from suite.models.mingru import MinGRU, g, log_g
from suite.models.minlstm import MinLSTM
from suite.models.s4d import S4D, S4DLayer


def naive(a, b):
    """h_t = a_t h_{t-1} + b_t, h_0 = 0, by a loop over time."""
    h, out = torch.zeros_like(b[:, 0]), []
    for t in range(b.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, 1)


def test_log_g_is_the_log_of_g_and_g_is_continuous_and_positive():
    x = torch.linspace(-30, 30, 2001, dtype=torch.float64)
    assert torch.allclose(log_g(x), torch.log(g(x)), atol=1e-12) and (g(x) > 0).all()
    assert g(torch.tensor(0.0)) == torch.sigmoid(torch.tensor(0.0)) == 0.5


@pytest.mark.parametrize("model", [MinGRU, MinLSTM])
def test_the_min_rnns_log_scan_equals_the_papers_recurrence(model):
    torch.manual_seed(0)
    core = model(3, model.Config(hidden_size=8)).double().blocks[0].core
    x = torch.randn(2, 50, 8, dtype=torch.float64) * 3
    u = core.inputs(x)
    if model is MinGRU:
        hidden, k = u.chunk(2, -1)
        z = torch.sigmoid(k)
        a, b = 1 - z, z * g(hidden)
    else:
        hidden, kf, ki = u.chunk(3, -1)
        f, i = torch.sigmoid(kf), torch.sigmoid(ki)
        a, b = f / (f + i), i / (f + i) * g(hidden)  # the normalised gates: f' + i' = 1
    assert torch.allclose(core(x), naive(a, b), atol=1e-10)


def test_hawk_starts_with_a_to_the_c_uniform_on_the_papers_ring_and_steps_the_rg_lru():
    torch.manual_seed(0)
    a_c = torch.sigmoid(-RGLRU(2000, Hawk.Config()).a_param) ** C  # a = σ(Λ), Λ = -a_param
    assert a_c.min() >= 0.9 - 1e-6 and a_c.max() <= 0.999 + 1e-6
    assert abs(a_c.mean().item() - 0.9495) < 0.005 and abs(a_c.median().item() - 0.9495) < 0.01  # uniform
    lru = RGLRU(6, Hawk.Config()).double()
    x = torch.randn(2, 20, 6, dtype=torch.float64)
    a_t, b_t = lru.coefficients(x)
    r, i = torch.sigmoid(lru.gate_a(x)), torch.sigmoid(lru.gate_x(x))
    assert torch.allclose(a_t, torch.sigmoid(-lru.a_param) ** (C * r), atol=1e-12)
    assert torch.allclose(b_t, torch.sqrt(1 - a_t**2) * i * x, atol=1e-9)


def test_hawks_input_normalisation_has_a_finite_gradient_where_a_t_reaches_one():
    lru = RGLRU(4, Hawk.Config())
    with torch.no_grad():
        lru.gate_a.bias.fill_(-200.0)  # r_t = σ(-200): a_t = 1 in float32
    x = torch.randn(1, 5, 4, requires_grad=True)
    lru.coefficients(x)[1].sum().backward()
    assert torch.isfinite(lru.a_param.grad).all() and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("init", ["lin", "inv"])
def test_s4d_init_is_the_papers(init):
    N = 16
    layer = S4DLayer(32, S4D.Config(hidden_size=32, d_state=N, ssm_init=init))
    n = torch.arange(N // 2, dtype=torch.float32)
    expected = math.pi * n if init == "lin" else N / math.pi * (N / (2 * n + 1) - 1)
    assert torch.allclose(layer.A_imag, expected.expand(32, -1))
    assert torch.allclose(-torch.exp(layer.log_A_real), torch.full((32, N // 2), -0.5))
    dt = torch.exp(layer.log_dt)
    assert dt.min() >= 0.001 and dt.max() <= 0.1


@pytest.mark.parametrize("init", ["lin", "inv"])
def test_the_s4d_kernel_is_the_impulse_response_of_the_zoh_recurrence(init):
    torch.manual_seed(0)
    layer = S4DLayer(4, S4D.Config(hidden_size=4, d_state=8, ssm_init=init, dt_max=0.5)).double()
    L = 40
    impulse = torch.zeros(1, L, 4, dtype=torch.float64)
    impulse[:, 0] = 1.0
    dA, dB = layer.discrete()
    h = naive(dA.expand(1, L, -1, -1), dB * impulse[..., None])  # h_t = exp(ΔA) h_{t-1} + (exp(ΔA) - 1)/A x_t
    assert torch.allclose(layer.readout(h, impulse)[0] - layer.D * impulse[0], layer.kernel(L).T, atol=1e-12)
    x = torch.randn(2, L, 4, dtype=torch.float64)
    K = layer.kernel(L)
    direct = torch.stack([sum(K[:, s] * x[:, t - s] for s in range(t + 1)) for t in range(L)], 1)
    assert torch.allclose(layer(x), direct + layer.D * x, atol=1e-10)  # the FFT convolution is the causal one


def test_s4d_inv_steps_as_it_convolves_in_float64():
    torch.manual_seed(0)
    net = S4D(5, S4D.Config(hidden_size=16, num_layers=2, ssm_init="inv")).double().eval()
    x = torch.randn(3, 37, 5, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(net.readout(torch.stack(net.unroll(x), 1)), net(x), atol=1e-9)


def test_min_rnns_keep_h_positive_so_the_log_scan_is_defined():
    torch.manual_seed(0)
    net = MinLSTM(2, MinLSTM.Config(hidden_size=8))
    states = torch.stack(net.unroll(torch.randn(2, 30, 2) * 5), 1)
    assert (states > 0).all()
