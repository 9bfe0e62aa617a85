"""Mamba-2 (Dao & Gu 2024, "Transformers are SSMs: Generalized Models and Efficient Algorithms Through Structured
State Space Duality", arXiv 2405.21060).

The SSD layer, its math copied from state-spaces/mamba mamba_ssm/modules/ssd_minimal.py (`segsum`,
`ssd_minimal_discrete`: the paper's Listing 1) and the block from mamba_ssm/modules/mamba2_simple.py. Per head,
with a scalar A < 0, a (head_dim x N) matrix state and B, C shared by the heads (one group):

    h_t = exp(Δ_t A) h_{t-1} + Δ_t x_t B_t^T,    y_t = h_t C_t + D x_t,

computed by chunks: a masked quadratic (attention-like) form inside each chunk, the recurrence between chunks.
The block: in_proj to (z, x, B, C, Δ), a causal conv + SiLU over (x, B, C), SSD, the gated RMSNorm
norm(y ⊙ SiLU(z)), out_proj; pre-norm residual RMSNorm blocks as in MixerModel.
Ours differs: the number of heads is fixed and head_dim = ceil(expand * hidden / heads) (the reference fixes
head_dim = 64 instead), so any width builds; N = 16 rather than 64-128, for ~12k-parameter models; plain-PyTorch
einsums instead of the Triton kernels (same function); a linear encoder replaces the token embedding.
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
from suite.schema import STRICT, PosInt


@dataclass(config=STRICT)
class Mamba2Config(StackConfig):
    d_state: PosInt = 16  # N, the state per head dimension (the paper: 64-128; modest for small models)
    expand: PosInt = 2  # inner width ~ expand * hidden_size
    nheads: PosInt = 2  # heads, each ceil(expand * hidden_size / nheads) wide (the reference: 64 wide, 1-2 heads here)
    d_conv: PosInt = 4  # width of the causal depthwise convolution
    chunk_size: PosInt = 16  # SSD chunk length: speed and memory only, every chunk size computes the same
    dt_min: float = Field(default=0.001, gt=0)  # Δ starts log-uniform in [dt_min, dt_max]
    dt_max: float = Field(default=0.1, gt=0)
    a_min: float = Field(default=1.0, gt=0)  # -A starts uniform in [a_min, a_max] (A_init_range)
    a_max: float = Field(default=16.0, gt=0)


def segsum(x: torch.Tensor) -> torch.Tensor:
    """(..., T) -> (..., T, T): x_{j+1} + ... + x_i at [i, j] for j <= i, -inf above the diagonal (the stable form:
    masked cumulative sums, not differences of cumsums)."""
    T = x.shape[-1]
    x = x.unsqueeze(-1).expand(*x.shape, T)
    x = x.masked_fill(~torch.ones(T, T, dtype=torch.bool, device=x.device).tril(-1), 0)
    return x.cumsum(-2).masked_fill(~torch.ones(T, T, dtype=torch.bool, device=x.device).tril(), -torch.inf)


def ssd(X, A, B, C, chunk: int) -> torch.Tensor:
    """y_t = sum_{s<=t} (C_t · B_s) exp(A_{s+1} + ... + A_t) X_s by chunks (ssd_minimal_discrete, one group):
    X (b, T, h, p), A (b, T, h), B and C (b, T, n) -> (b, T, h, p). T is padded to a multiple of `chunk` (a padded
    step adds nothing and decays nothing), then cut."""
    T = X.shape[1]
    pad = -T % chunk
    X, A, B, C = (F.pad(v, (0, 0) * (v.dim() - 2) + (0, pad)).unflatten(1, (-1, chunk)) for v in (X, A, B, C))
    A = A.permute(0, 3, 1, 2)  # (b, h, chunks, l)
    A_cum = A.cumsum(-1)
    # 1. within each chunk: the masked quadratic form
    y_diag = torch.einsum("bcln,bcsn,bhcls,bcshp->bclhp", C, B, torch.exp(segsum(A)), X)
    # 2. the state each chunk leaves, 3. passed on between chunks, 4. read out by the next chunk's steps
    states = torch.einsum("bcln,bhcl,bclhp->bchpn", B, torch.exp(A_cum[..., -1:] - A_cum), X)
    states = torch.cat([torch.zeros_like(states[:, :1]), states], 1)
    decay_chunk = torch.exp(segsum(F.pad(A_cum[..., -1], (1, 0))))
    states = torch.einsum("bhzc,bchpn->bzhpn", decay_chunk, states)[:, :-1]
    y_off = torch.einsum("bcln,bchpn,bhcl->bclhp", C, states, torch.exp(A_cum))
    return (y_diag + y_off).flatten(1, 2)[:, :T]


class Mamba2Mixer(nn.Module):
    """in_proj -> (z, x, B, C, Δ); conv + SiLU over (x, B, C); SSD (+ D x); norm(y ⊙ SiLU(z)); out_proj."""

    def __init__(self, width: int, cfg: Mamba2Config):
        super().__init__()
        self.h, self.n, self.chunk = cfg.nheads, cfg.d_state, cfg.chunk_size
        self.p = -(-cfg.expand * width // cfg.nheads)  # head_dim
        self.inner = inner = self.h * self.p
        self.in_proj = nn.Linear(width, 2 * inner + 2 * self.n + self.h, bias=False)
        self.conv = CausalConv(inner + 2 * self.n, cfg.d_conv)
        lo, hi = math.log(cfg.dt_min), math.log(cfg.dt_max)
        dt = torch.exp(torch.rand(self.h) * (hi - lo) + lo).clamp(min=1e-4)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus: softplus(dt_bias) = dt
        self.A_log = nn.Parameter(torch.log(torch.empty(self.h).uniform_(cfg.a_min, cfg.a_max)))
        self.D = nn.Parameter(torch.ones(self.h))
        self.norm = RMSNorm(inner, eps=1e-5)
        self.out_proj = nn.Linear(inner, width, bias=False)
        with torch.no_grad():  # MixerModel's rescale_prenorm_residual: 1/sqrt(n_layer) on the residual branch
            self.out_proj.weight.div_(math.sqrt(cfg.num_layers))

    def inputs(self, u):
        """x (b, T, h, p); Δ and Δ A (b, T, h); B and C (b, T, n); the gate z (b, T, inner)."""
        z, xBC, dt = self.in_proj(u).split([self.inner, self.inner + 2 * self.n, self.h], dim=-1)
        x, B, C = F.silu(self.conv(xBC)).split([self.inner, self.n, self.n], dim=-1)
        dt = F.softplus(dt + self.dt_bias)
        return x.unflatten(-1, (self.h, self.p)), dt, dt * -torch.exp(self.A_log), B, C, z

    def output(self, y, x, z):
        return self.out_proj(self.norm((y + self.D.unsqueeze(-1) * x).flatten(-2) * F.silu(z)))  # gate, then norm

    def forward(self, u):
        x, dt, dA, B, C, z = self.inputs(u)
        return self.output(ssd(x * dt.unsqueeze(-1), dA, B, C, self.chunk), x, z)


class Mamba2Block(nn.Module):
    """x + dropout(Mamba2(RMSNorm(x)))."""

    def __init__(self, width: int, cfg: Mamba2Config):
        super().__init__()
        self.norm, self.mixer, self.dropout = RMSNorm(width, eps=1e-5), Mamba2Mixer(width, cfg), nn.Dropout(cfg.dropout)

    def forward(self, x):
        return x + self.dropout(self.mixer(self.norm(x)))


class Mamba2(BlockStack):
    """A linear encoder, `num_layers` Mamba-2 blocks, a final RMSNorm."""

    name = "mamba2"
    Config = Mamba2Config
    search_space = {"model.num_layers": {"choices": [1, 2, 3]}, "model.dropout": {"low": 0.0, "high": 0.3},
                    "model.d_state": {"choices": [8, 16, 32]}, "model.nheads": {"choices": [1, 2, 4]},
                    "model.dt_max": {"low": 0.01, "high": 0.3}}

    def __init__(self, input_size: int, cfg: Mamba2Config):
        super().__init__(input_size, cfg, lambda: Mamba2Block(cfg.hidden_size, cfg), RMSNorm(cfg.hidden_size, eps=1e-5))

    def unroll(self, x) -> list:
        """The top layer's per-head matrix states (each flattened to (B, heads * head_dim * N)), stepped one by one."""
        h = self.below_top(x)
        top = self.blocks[-1]
        x, dt, dA, B, C, z = top.mixer.inputs(top.norm(h))
        self._top = (h, x, z, C)
        shape = (x.shape[0], *x.shape[2:], B.shape[-1])  # (B, heads, head_dim, N)
        state, states = x.new_zeros(shape).flatten(1), []
        for t in range(x.shape[1]):  # the flat state is the one carried: its .grad holds every later step's
            state = (torch.exp(dA[:, t])[..., None, None] * state.view(shape)
                     + (dt[:, t, :, None] * x[:, t]).unsqueeze(-1) * B[:, t, None, None, :]).flatten(1)
            states.append(state)
        return states

    def readout(self, states):
        h, x, z, C = self._top
        top = self.blocks[-1]
        y = torch.einsum("bthpn,btn->bthp", states.unflatten(-1, (*x.shape[2:], C.shape[-1])), C)
        return self.norm(h + top.dropout(top.mixer.output(y, x, z)))
