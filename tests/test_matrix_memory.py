"""The matrix-memory recurrences (mLSTM, Gated DeltaNet): their parallel and chunkwise forms equal the papers'
recurrences written naively, in float64, and their gates start where the papers put them."""
import math

import pytest
import torch
import torch.nn.functional as F

from suite.models import gated_deltanet as gdn
from suite.models import mlstm


def mlstm_naive(q, k, v, i_pre, f_pre):
    """The paper's unstabilised mLSTM: C_t = f C + exp(ĩ) k vᵀ, n_t = f n + exp(ĩ) k, h = Cᵀq / max(|nᵀq|, 1)."""
    B, NH, T, DH = q.shape
    C, n, out = q.new_zeros(B, NH, DH, DH), q.new_zeros(B, NH, DH), []
    k = k / math.sqrt(DH)
    for t in range(T):
        f, i = torch.sigmoid(f_pre[..., t])[..., None], torch.exp(i_pre[..., t])[..., None]
        C = f[..., None] * C + i[..., None] * k[:, :, t, :, None] * v[:, :, t, None, :]
        n = f * n + i * k[:, :, t]
        qt = q[:, :, t]
        out.append((qt[..., None] * C).sum(-2) / torch.clamp((qt * n).sum(-1, keepdim=True).abs(), min=1.0))
    return torch.stack(out, 2)


def mlstm_inputs(T, gate_scale, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(2, 3, T, 5, generator=g, dtype=dtype) for _ in range(3))
    return q, k, v, gate_scale * torch.randn(2, 3, T, generator=g, dtype=dtype), \
        3 * torch.randn(2, 3, T, generator=g, dtype=dtype)


def mlstm_stepped(q, k, v, i_pre, f_pre):
    B, NH, T, DH = q.shape
    state, out = (q.new_zeros(B, NH, DH, DH), q.new_zeros(B, NH, DH), q.new_zeros(B, NH)), []
    for t in range(T):
        state = mlstm.step(state, q[:, :, t], k[:, :, t], v[:, :, t], i_pre[..., t], f_pre[..., t])
        out.append(mlstm.read(*state, q[:, :, t]))
    return torch.stack(out, 2)


@pytest.mark.parametrize("T", [1, 9, 40])
def test_mlstm_parallel_and_stepped_forms_equal_the_unstabilised_recurrence(T):
    x = mlstm_inputs(T, gate_scale=3.0)
    naive = mlstm_naive(*x)
    assert torch.allclose(mlstm.parallel(*x), naive, atol=1e-10)
    assert torch.allclose(mlstm_stepped(*x), naive, atol=1e-10)


def test_mlstm_stabiliser_keeps_huge_input_gates_finite_in_float32():
    """exp(ĩ) with ĩ ~ 100 overflows float32; the stabilised forms stay finite and match float64."""
    x64 = mlstm_inputs(30, gate_scale=100.0)
    x32 = [t.float() for t in x64]
    assert not torch.isfinite(torch.exp(x32[3])).all()
    for form in (mlstm.parallel, mlstm_stepped):
        out = form(*x32)
        assert torch.isfinite(out).all() and torch.allclose(out.double(), form(*x64), atol=1e-4)


def test_mlstm_gates_start_as_the_paper_sets_them():
    torch.manual_seed(0)
    layer = mlstm.MLSTM(3, mlstm.MLSTM.Config(hidden_size=16, heads=4)).blocks[0].mlstm
    i_bias, f_bias = layer.gates.bias.detach().chunk(2)
    assert (layer.gates.weight == 0).all() and torch.allclose(f_bias, torch.linspace(3.0, 6.0, 4))
    assert i_bias.abs().max() < 0.5 and (layer.skip == 1).all()  # ĩ bias ~ N(0, 0.1²), skip starts at 1
    assert layer.inner == 32 and layer.inner % 4 == 0  # proj_factor 2, whole heads and q/k/v blocks


def gdn_naive(q, k, v, beta, log_alpha):
    """The paper's gated delta rule: S_t = α_t S_{t-1} (I - β_t k_t k_tᵀ) + β_t v_t k_tᵀ (S: DV × DK), o_t = S_t q_t."""
    B, H, T, DK = k.shape
    S, eye, out = q.new_zeros(B, H, v.shape[-1], DK), torch.eye(DK, dtype=q.dtype), []
    for t in range(T):
        kt, b = k[:, :, t], beta[:, :, t, None, None]
        S = log_alpha[:, :, t, None, None].exp() * S @ (eye - b * kt[..., :, None] * kt[..., None, :]) \
            + b * v[:, :, t, :, None] * kt[..., None, :]
        out.append((S @ q[:, :, t, :, None])[..., 0])
    return torch.stack(out, 2)


def gdn_inputs(T, seed=0, gate=True):
    g = torch.Generator().manual_seed(seed)
    q, k = (gdn.l2norm(torch.randn(2, 3, T, 6, generator=g, dtype=torch.float64)) for _ in range(2))
    v = torch.randn(2, 3, T, 4, generator=g, dtype=torch.float64)
    beta = torch.rand(2, 3, T, generator=g, dtype=torch.float64)
    log_alpha = F.logsigmoid(torch.randn(2, 3, T, generator=g, dtype=torch.float64)) if gate else torch.zeros_like(beta)
    return q, k, v, beta, log_alpha


@pytest.mark.parametrize("T,chunk", [(37, 16), (37, 8), (32, 16), (5, 16), (12, 1)])
@pytest.mark.parametrize("gate", [True, False], ids=["gated", "plain_delta_rule"])
def test_gdn_chunkwise_form_and_step_equal_the_recurrence(T, chunk, gate):
    x = gdn_inputs(T, gate=gate)
    naive = gdn_naive(*x)
    assert torch.allclose(gdn.chunkwise(*x, chunk), naive, atol=1e-10)
    q, k, v, beta, log_alpha = x
    S, stepped = q.new_zeros(2, 3, 6, 4), []
    for t in range(T):
        S = gdn.step(S, q[:, :, t], k[:, :, t], v[:, :, t], beta[..., t], log_alpha[..., t])
        stepped.append((q[:, :, t, :, None] * S).sum(-2))
    assert torch.allclose(torch.stack(stepped, 2), naive, atol=1e-10)


def test_gdn_with_beta_one_and_no_decay_overwrites_the_value_stored_under_a_key():
    """The delta rule's defining property: writing v' under an already stored unit key k replaces v by v'."""
    k = F.normalize(torch.randn(1, 1, 1, 6, dtype=torch.float64), dim=-1).expand(1, 1, 2, 6)
    v = torch.randn(1, 1, 2, 4, dtype=torch.float64)
    out = gdn.chunkwise(k, k, v, torch.ones(1, 1, 2, dtype=torch.float64), torch.zeros(1, 1, 2, dtype=torch.float64), 4)
    assert torch.allclose(out, v, atol=1e-10)


def test_gdn_chunkwise_gradients_stay_finite_under_strong_decay():
    q, k, v, beta, _ = gdn_inputs(20)
    log_alpha = torch.full_like(beta, -60.0, requires_grad=True)  # exp(+60·16) would overflow were it not masked
    gdn.chunkwise(q, k, v, beta, log_alpha, 16).sum().backward()
    assert torch.isfinite(log_alpha.grad).all()


def test_gdn_gates_start_as_mamba2s_decay():
    torch.manual_seed(0)
    layer = gdn.GatedDeltaNet(3, gdn.GatedDeltaNet.Config(hidden_size=32, heads=4)).blocks[0].gdn
    dt = F.softplus(layer.dt_bias.detach())
    assert ((dt >= 1e-3 - 1e-9) & (dt <= 0.1 + 1e-9)).all()  # Δt log-uniform in [0.001, 0.1]
    assert ((layer.A_log.exp() > 0) & (layer.A_log.exp() < 16)).all()  # A ~ U(0, 16)
    _, _, _, beta, log_alpha = layer.inputs(torch.randn(2, 7, 32))
    assert ((log_alpha < 0) & (beta > 0) & (beta < 1)).all()  # α = exp(log α) in (0, 1)


@pytest.mark.parametrize("model", ["mlstm", "gated_deltanet"])
def test_the_loss_at_the_last_step_reaches_every_earlier_state(model):
    """unroll's states are the ones the next step reads, so ∂L/∂h_t flows back through the recurrence."""
    from suite.diagnostics import hidden_grad_norms
    from suite.models import MODELS, Network
    from tasks.adding import Adding, AddingConfig

    torch.manual_seed(0)
    task = Adding(AddingConfig(seq_len=12))
    net = Network(model, MODELS[model].Config(hidden_size=8, num_layers=2), task.input_size, task.n_outputs, False)
    x, y = task.make_batch(4, torch.Generator().manual_seed(0), "cpu")
    assert all(n > 0 for n in hidden_grad_norms(net, task, x, y))
