"""Mamba and Mamba-2: the parallel scan and the chunked SSD equal the reference recurrences, in float64; the
initialisation lands where the papers put it; any width builds and no step sees a later one."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from suite.models.mamba import Mamba, MambaMixer
from suite.models.mamba2 import Mamba2, Mamba2Mixer, segsum, ssd

f64 = {"dtype": torch.float64}


def test_the_mamba_layer_equals_selective_scan_ref_stepped():
    """mamba_ssm's selective_scan_ref, written out over the layer's own weights, gives the layer's output."""
    torch.manual_seed(0)
    mixer = MambaMixer(12, Mamba.Config(hidden_size=12, d_state=5)).double()
    u = torch.randn(2, 23, 12, **f64)
    x, z = mixer.in_proj(u).chunk(2, -1)
    x = F.silu(mixer.conv(x))
    dt, B, C = mixer.x_proj(x).split([mixer.rank, 5, 5], -1)
    delta, A = F.softplus(dt @ mixer.dt_proj.weight.T + mixer.dt_proj.bias), -torch.exp(mixer.A_log)
    deltaA = torch.exp(torch.einsum("bld,dn->bldn", delta, A))
    deltaB_u = torch.einsum("bld,bln,bld->bldn", delta, B, x)
    h, ys = torch.zeros(2, x.shape[-1], 5, **f64), []
    for t in range(23):
        h = deltaA[:, t] * h + deltaB_u[:, t]
        ys.append(torch.einsum("bdn,bn->bd", h, C[:, t]))
    y = (torch.stack(ys, 1) + mixer.D * x) * F.silu(z)
    assert torch.allclose(mixer(u), mixer.out_proj(y), atol=1e-12)


def test_the_mamba_init_is_the_papers():
    mixer = MambaMixer(40, Mamba.Config(hidden_size=40, num_layers=4))
    dt = F.softplus(mixer.dt_proj.bias)
    assert mixer.rank == 3 and mixer.in_proj.out_features == 160 and mixer.x_proj.out_features == 3 + 2 * 16
    assert dt.min() >= 1e-3 * 0.999 and dt.max() <= 0.1 * 1.001 and dt.log().std() > 0.5  # log-uniform on [1e-3, 0.1]
    assert mixer.dt_proj.weight.abs().max() <= 3**-0.5
    assert torch.allclose(-torch.exp(mixer.A_log), -torch.arange(1.0, 17).expand(80, 16))  # S4D-real
    assert torch.equal(mixer.D, torch.ones(80))
    assert mixer.out_proj.weight.abs().max() <= 80**-0.5 / 2  # kaiming-uniform bound, rescaled by 1/sqrt(4 layers)


def quadratic(X, A, B, C):
    """The SSD's dual form: Y = (L ∘ C B^T) X with L = exp(segsum(A)), over the whole sequence at once."""
    L = torch.exp(segsum(A.transpose(1, 2)))  # (b, h, T, T)
    return torch.einsum("btn,bsn,bhts,bshp->bthp", C, B, L, X)


def recurrent(X, A, B, C):
    h, ys = torch.zeros(X.shape[0], X.shape[2], X.shape[3], B.shape[-1], **f64), []
    for t in range(X.shape[1]):
        h = torch.exp(A[:, t])[..., None, None] * h + X[:, t, ..., None] * B[:, t, None, None, :]
        ys.append(torch.einsum("bhpn,bn->bhp", h, C[:, t]))
    return torch.stack(ys, 1)


@pytest.mark.parametrize("T,chunk", [(1, 16), (16, 16), (37, 16), (37, 5), (20, 64)])
def test_the_chunked_ssd_equals_the_quadratic_form_and_the_loop(T, chunk):
    g = torch.Generator().manual_seed(T + chunk)
    X, B, C = (torch.randn(2, T, *s, generator=g, **f64) for s in ((3, 4), (6,), (6,)))
    A = -torch.rand(2, T, 3, generator=g, **f64) * 2  # dt * A < 0
    y = ssd(X, A, B, C, chunk)
    assert y.shape == X.shape
    assert torch.allclose(y, quadratic(X, A, B, C), atol=1e-12) and torch.allclose(y, recurrent(X, A, B, C), atol=1e-12)


def test_the_mamba2_init_is_the_papers_and_the_chunk_size_changes_nothing():
    cfg = Mamba2.Config(hidden_size=21, nheads=4, num_layers=2)
    mixer = Mamba2Mixer(21, cfg)
    dt = F.softplus(mixer.dt_bias)
    assert (mixer.h, mixer.p) == (4, 11)  # head_dim = ceil(2 * 21 / 4)
    assert dt.min() >= 1e-3 * 0.999 and dt.max() <= 0.1 * 1.001
    assert (torch.exp(mixer.A_log) >= 1).all() and (torch.exp(mixer.A_log) <= 16).all() and torch.equal(mixer.D, torch.ones(4))
    torch.manual_seed(0)
    net = Mamba2(3, cfg).double()
    x = torch.randn(2, 29, 3, **f64)
    y = net(x)
    for chunk in (1, 7, 64):
        other = Mamba2(3, dataclasses.replace(cfg, chunk_size=chunk)).double()
        other.load_state_dict(net.state_dict())
        assert torch.allclose(other(x), y, atol=1e-10)


@pytest.mark.parametrize("cls", [Mamba, Mamba2])
@pytest.mark.parametrize("hidden", [1, 3, 17])
def test_any_width_builds_and_no_step_sees_a_later_one(cls, hidden):
    torch.manual_seed(hidden)
    net = cls(2, cls.Config(hidden_size=hidden, num_layers=2)).double()
    x = torch.randn(2, 19, 2, **f64)
    later = x.clone()
    later[:, 11:] += 1.0
    a, b = net(x), net(later)
    assert a.shape == (2, 19, hidden) and torch.allclose(a[:, :11], b[:, :11], atol=1e-12)
    assert hidden == 1 or not torch.allclose(a[:, 11:], b[:, 11:])  # one unit, RMS-normed: only its sign


@pytest.mark.parametrize("cls", [Mamba, Mamba2])
def test_each_unrolled_state_feeds_the_next(cls):
    """Gradient flow reads h_t.grad: it must hold the path through every later step, not only h_t's own output."""
    torch.manual_seed(0)
    net = cls(2, cls.Config(hidden_size=6, num_layers=2))
    states = net.unroll(torch.randn(3, 9, 2))
    for s in states:
        s.retain_grad()
    net.readout(torch.stack(states, 1))[:, -1].sum().backward()
    assert all(s.grad.abs().sum() > 0 for s in states)
