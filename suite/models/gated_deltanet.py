"""Gated DeltaNet (Yang, Kautz & Hatamizadeh 2025, Gated Delta Networks: Improving Mamba2 with Delta Rule, ICLR 2025,
arXiv 2412.06464).

Each head keeps a matrix state updated by the gated delta rule S_t = S_{t-1} α_t (I - β_t k_t k_tᵀ) + β_t v_t k_tᵀ and
reads o_t = S_t q_t: α_t ∈ (0, 1) decays the whole memory (Mamba-2's gate), β_t ∈ (0, 1) replaces the value stored
under k_t (the delta rule). forward runs the paper's §3 chunkwise form: within a chunk the WY/UT transform
T = (I + tril(diag(β) K Kᵀ ⊙ Γ, -1))⁻¹ (Γ_ij = α_{j+1}···α_i) turns the products of Householder-like factors into
matmuls, and only the chunk-to-chunk state update is a loop (over chunks); unroll steps the recurrence. The math is
fla-org/flash-linear-attention's fla/ops/delta_rule/naive.py (`delta_rule_recurrence`, `delta_rule_chunkwise`) with the
gate as tests/ops/test_gated_delta.py's `recurrent_gated_delta_rule_ref` / `chunk_gated_delta_rule_ref`; the layer is
fla/layers/gated_deltanet.py (q, k, v: linear, short conv, SiLU; q, k L2-normalised, q scaled by 1/√d_k;
β = sigmoid(b(x)); log α = -exp(A_log) softplus(a(x) + dt_bias); output RMSNorm(o) ⊙ silu(g(x)) per head; o_proj), the
block fla/models/gated_deltanet (pre-RMSNorm residual GDN, then a SwiGLU MLP).
Where ours differs: the triangular inverse is torch.linalg.solve_triangular, not fla's row loop; a chunk shorter than
chunk_size is zero-padded; one depthwise conv (with a bias) over [q, k, v] stands for fla's three bias-free ones;
Linear weights keep PyTorch's fan-in init (fla's N(0, 0.02) is sized for width 2048); the value width is
ceil(expand_v·expand_k·hidden/heads) per head, rounded once. The SwiGLU MLP is off by default (mlp_ratio 0; fla: 4,
ceil(2/3·ratio·hidden) wide here, not rounded to 256): with it a layer costs ~14·hidden², one more unit of hidden_size
adds more than 10% of a 3,000-parameter budget, and such budgets cannot be met within 5%.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field
from pydantic.dataclasses import dataclass
from torch import nn

from suite.models.base import StackConfig
from suite.models.parts import BlockStack, CausalConv, RMSNorm
from suite.schema import STRICT, NonNegFloat, PosInt


@dataclass(config=STRICT)
class GatedDeltaNetConfig(StackConfig):
    heads: PosInt = 2  # heads (fla: 6 of width 256 at hidden 2048); key width per head = ceil(expand_k·hidden/heads)
    expand_k: float = Field(default=0.75, gt=0, le=4)  # all heads' key width / hidden_size (fla: 0.75)
    expand_v: float = Field(default=2.0, gt=0, le=4)  # value width / key width (fla: 2)
    conv_width: PosInt = 4  # the short causal conv on q, k, v (fla: 4)
    chunk_size: PosInt = 16  # steps per chunk of the chunkwise form (fla's kernels: 64)
    mlp_ratio: NonNegFloat = 0.0  # a SwiGLU MLP 2/3·ratio·hidden wide after each GDN layer (fla: 4); 0: none


def l2norm(x):
    return x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + 1e-6)  # fla's l2norm


def chunkwise(q, k, v, beta, log_alpha, size: int):
    """o_t = S_t q_t of the gated delta rule chunk by chunk: q, k (B, H, T, DK), v (B, H, T, DV), β, log α (B, H, T)."""
    B, H, T, DK = k.shape
    size = min(size, T)  # a sequence shorter than a chunk is one chunk
    pad = -T % size
    q, k, v = (F.pad(x, (0, 0, 0, pad)).unflatten(2, (-1, size)) for x in (q, k, v))
    beta, g = (F.pad(x, (0, pad)).unflatten(2, (-1, size)) for x in (beta, log_alpha))
    g = g.cumsum(-1)  # log α_1···α_i within each chunk
    causal = torch.ones(size, size, dtype=torch.bool, device=q.device).tril()
    decay = (g[..., :, None] - g[..., None, :]).masked_fill(~causal, -math.inf).exp()  # Γ_ij, 0 above the diagonal
    kb = k * beta[..., None]
    eye = torch.eye(size, dtype=q.dtype, device=q.device)
    t = torch.linalg.solve_triangular(((kb @ k.transpose(-2, -1)) * decay).tril(-1) + eye, eye,
                                      upper=False, unitriangular=True)  # the UT transform
    u, w = t @ (v * beta[..., None]), t @ (kb * g.exp()[..., None])
    attn = (q @ k.transpose(-2, -1)) * decay
    S, out = q.new_zeros(B, H, DK, v.shape[-1]), []
    for c in range(q.shape[2]):  # state S (DK, DV) carried from chunk to chunk
        v_new = u[:, :, c] - w[:, :, c] @ S
        out.append((q[:, :, c] * g[:, :, c, :, None].exp()) @ S + attn[:, :, c] @ v_new)
        last = g[:, :, c, -1:]
        S = S * last.exp()[..., None] + (k[:, :, c] * (last - g[:, :, c]).exp()[..., None]).transpose(-2, -1) @ v_new
    return torch.cat(out, 2)[:, :, :T]


def step(S, q, k, v, beta, log_alpha):
    """One step: S (B, H, DK, DV) decays by α, then stores β(v - Sᵀk) under k (read as o = Sᵀq)."""
    S = S * log_alpha.exp()[..., None, None]
    v_new = beta[..., None] * (v - (S * k[..., None]).sum(-2))
    return S + k[..., :, None] * v_new[..., None, :]


class GatedDeltaNetLayer(nn.Module):
    def __init__(self, width: int, cfg: GatedDeltaNetConfig):
        super().__init__()
        H, dk = cfg.heads, math.ceil(cfg.expand_k * width / cfg.heads)
        dv = math.ceil(cfg.expand_v * cfg.expand_k * width / cfg.heads)
        self.heads, self.dk, self.dv, self.chunk = H, dk, dv, cfg.chunk_size
        self.qkv = nn.Linear(width, H * (2 * dk + dv), bias=False)
        self.conv = CausalConv(H * (2 * dk + dv), cfg.conv_width)
        self.ab = nn.Linear(width, 2 * H, bias=False)  # α's and β's pre-activations per head
        self.A_log = nn.Parameter(torch.empty(H).uniform_(0, 16).log())  # fla: A ~ U(0, 16)
        dt = torch.exp(torch.rand(H) * (math.log(0.1) - math.log(0.001)) + math.log(0.001)).clamp(min=1e-4)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus⁻¹(dt), dt log-uniform [1e-3, 0.1]
        self.g = nn.Linear(width, H * dv, bias=False)
        self.norm = RMSNorm(dv)
        self.o = nn.Linear(H * dv, width, bias=False)

    def inputs(self, x):
        """q (scaled), k (B, H, T, DK), v (B, H, T, DV), β and log α (B, H, T)."""
        q, k, v = F.silu(self.conv(self.qkv(x))).split([self.heads * self.dk] * 2 + [self.heads * self.dv], -1)
        q, k, v = (s.unflatten(-1, (self.heads, -1)).transpose(1, 2) for s in (q, k, v))
        a, b = self.ab(x).transpose(1, 2).chunk(2, 1)
        log_alpha = -self.A_log.exp()[:, None] * F.softplus(a + self.dt_bias[:, None])
        return l2norm(q) / math.sqrt(self.dk), l2norm(k), v, b.sigmoid(), log_alpha

    def output(self, o, x):
        """o (B, T, H, DV) -> RMSNorm per head ⊙ silu(g(x)) -> o_proj."""
        return self.o((self.norm(o) * F.silu(self.g(x).unflatten(-1, (self.heads, -1)))).flatten(2))

    def forward(self, x):
        return self.output(chunkwise(*self.inputs(x), self.chunk).transpose(1, 2), x)


class GatedDeltaNetBlock(nn.Module):
    """x + dropout(GDN(norm(x))), then + dropout(SwiGLU(norm(x)))."""

    def __init__(self, width: int, cfg: GatedDeltaNetConfig):
        super().__init__()
        self.norm, self.gdn, self.dropout = RMSNorm(width), GatedDeltaNetLayer(width, cfg), nn.Dropout(cfg.dropout)
        m = math.ceil(2 / 3 * cfg.mlp_ratio * width)
        self.mlp = nn.ModuleDict({"norm": RMSNorm(width), "gate_up": nn.Linear(width, 2 * m, bias=False),
                                  "down": nn.Linear(m, width, bias=False)}) if m else None

    def after(self, y, x):
        """The residual around the GDN layer's output y, then the MLP."""
        x = x + self.dropout(y)
        if self.mlp is None:
            return x
        gate, up = self.mlp["gate_up"](self.mlp["norm"](x)).chunk(2, -1)
        return x + self.dropout(self.mlp["down"](F.silu(gate) * up))

    def forward(self, x):
        return self.after(self.gdn(self.norm(x)), x)


class GatedDeltaNet(BlockStack):
    """A linear encoder, `num_layers` Gated DeltaNet blocks, a final norm."""

    name = "gated_deltanet"
    Config = GatedDeltaNetConfig
    search_space = {"model.num_layers": {"choices": [1, 2, 3]}, "model.dropout": {"low": 0.0, "high": 0.3},
                    "model.heads": {"choices": [1, 2]}, "model.mlp_ratio": {"choices": [0.0, 2.0]}}

    def __init__(self, input_size: int, cfg: GatedDeltaNetConfig):
        super().__init__(input_size, cfg, lambda: GatedDeltaNetBlock(cfg.hidden_size, cfg), RMSNorm(cfg.hidden_size))

    def unroll(self, x) -> list:
        """The top layer's states S_1..S_T (B, H·DK·DV), stepped one by one (the chunkwise form computes the same)."""
        h = self.below_top(x)
        top = self.blocks[-1]
        z = top.norm(h)
        q, k, v, beta, log_alpha = top.gdn.inputs(z)
        self._top = (h, z, q.transpose(1, 2))
        shape = (*k.shape[:2], k.shape[-1], v.shape[-1])
        states = [q.new_zeros(shape).flatten(1)]
        for t in range(q.shape[2]):  # each step reads the flat state it returned: gradients reach S_t through S_{t+1}
            S = step(states[-1].view(shape), q[:, :, t], k[:, :, t], v[:, :, t], beta[..., t], log_alpha[..., t])
            states.append(S.flatten(1))
        return states[1:]

    def readout(self, states):
        h, z, q = self._top
        top = self.blocks[-1]
        S = states.unflatten(-1, (top.gdn.heads, top.gdn.dk, top.gdn.dv))
        o = (q[..., :, None] * S).sum(-2)  # Sᵀq per step and head
        return self.norm(top.after(top.gdn.output(o, z), h))
