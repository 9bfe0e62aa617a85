"""Mamba (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", arXiv 2312.00752).

The selective state space layer (S6), its math copied from state-spaces/mamba: the scan from
mamba_ssm/ops/selective_scan_interface.py `selective_scan_ref`, the block from mamba_ssm/modules/mamba_simple.py
`Mamba` and the stack from mamba_ssm/models/mixer_seq_simple.py `MixerModel`. Per inner channel d and state n,

    h_t = exp(Δ_t A) ⊙ h_{t-1} + Δ_t B_t x_t,    y_t = C_t h_t + D ⊙ x_t,    Δ_t = softplus(W_Δ x_t + b_Δ),

with A = -exp(A_log) diagonal and Δ, B, C projected from the input (the selection). x is the in-projection after a
short causal convolution and SiLU; y is gated by SiLU(z) and projected out. Pre-norm residual RMSNorm blocks.
Ours differs: the scan runs as parts.linear_scan (log2 T vectorised steps) instead of the fused CUDA kernel (same
function, more memory); a linear encoder replaces the token embedding; the final norm is RMSNorm as MixerModel's
rms_norm=True. The state size N keeps the paper's default, 16, at every width.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field
from pydantic.dataclasses import dataclass
from torch import nn

from suite.models.base import StackConfig
from suite.models.parts import BlockStack, CausalConv, RMSNorm, linear_scan
from suite.schema import STRICT, PosInt


@dataclass(config=STRICT)
class MambaConfig(StackConfig):
    d_state: PosInt = 16  # N, the state per inner channel (the paper's default)
    expand: PosInt = 2  # inner width = expand * hidden_size
    d_conv: PosInt = 4  # width of the causal depthwise convolution
    dt_min: float = Field(default=0.001, gt=0)  # Δ starts log-uniform in [dt_min, dt_max]
    dt_max: float = Field(default=0.1, gt=0)


class MambaMixer(nn.Module):
    """in_proj -> (x, z); x: causal conv, SiLU, selective scan (+ D x); y ⊙ SiLU(z); out_proj."""

    def __init__(self, width: int, cfg: MambaConfig):
        super().__init__()
        inner, self.n = cfg.expand * width, cfg.d_state
        self.rank = math.ceil(width / 16)  # dt_rank "auto"
        self.in_proj = nn.Linear(width, 2 * inner, bias=False)
        self.conv = CausalConv(inner, cfg.d_conv)
        self.x_proj = nn.Linear(inner, self.rank + 2 * self.n, bias=False)
        self.dt_proj = nn.Linear(self.rank, inner)
        std = self.rank**-0.5  # dt_init "random", dt_scale 1: preserves variance at init
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        lo, hi = math.log(cfg.dt_min), math.log(cfg.dt_max)
        dt = torch.exp(torch.rand(inner) * (hi - lo) + lo).clamp(min=1e-4)
        with torch.no_grad():  # inverse softplus, so that softplus(b_Δ) = dt
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        A = torch.arange(1, self.n + 1, dtype=torch.float32).repeat(inner, 1)  # S4D-real: A = -(1, 2, ..., N)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(inner))
        self.out_proj = nn.Linear(inner, width, bias=False)
        with torch.no_grad():  # MixerModel's rescale_prenorm_residual: 1/sqrt(n_layer) on the residual branch
            self.out_proj.weight.div_(math.sqrt(cfg.num_layers))

    def inputs(self, u):
        """exp(Δ A) and Δ B x, both (B, T, inner, N), and (x, z, C), which the readout needs."""
        x, z = self.in_proj(u).chunk(2, dim=-1)
        x = F.silu(self.conv(x))
        dt, B, C = self.x_proj(x).split([self.rank, self.n, self.n], dim=-1)
        dt = F.softplus(self.dt_proj(dt))
        dA = torch.exp(dt.unsqueeze(-1) * -torch.exp(self.A_log))
        dBx = (dt * x).unsqueeze(-1) * B.unsqueeze(-2)
        return dA, dBx, (x, z, C)

    def readout(self, h, x, z, C):
        y = torch.einsum("btdn,btn->btd", h, C) + self.D * x
        return self.out_proj(y * F.silu(z))

    def forward(self, u):
        dA, dBx, rest = self.inputs(u)
        return self.readout(linear_scan(dA, dBx), *rest)


class MambaBlock(nn.Module):
    """x + dropout(Mamba(RMSNorm(x)))."""

    def __init__(self, width: int, cfg: MambaConfig):
        super().__init__()
        self.norm, self.mixer, self.dropout = RMSNorm(width, eps=1e-5), MambaMixer(width, cfg), nn.Dropout(cfg.dropout)

    def forward(self, x):
        return x + self.dropout(self.mixer(self.norm(x)))


class Mamba(BlockStack):
    """A linear encoder, `num_layers` Mamba blocks, a final RMSNorm."""

    name = "mamba"
    Config = MambaConfig
    search_space = {"model.num_layers": {"choices": [1, 2, 3]}, "model.dropout": {"low": 0.0, "high": 0.3},
                    "model.d_state": {"choices": [4, 8, 16, 32]}, "model.expand": {"choices": [1, 2]},
                    "model.dt_max": {"low": 0.01, "high": 0.3}}

    def __init__(self, input_size: int, cfg: MambaConfig):
        super().__init__(input_size, cfg, lambda: MambaBlock(cfg.hidden_size, cfg), RMSNorm(cfg.hidden_size, eps=1e-5))

    def unroll(self, x) -> list:
        """The top layer's states h_1..h_T (each (B, inner * N)), stepped one by one; the scan computes the same."""
        h = self.below_top(x)
        top = self.blocks[-1]
        dA, dBx, rest = top.mixer.inputs(top.norm(h))
        self._top = (h, rest)
        state, states = dBx.new_zeros(dBx.shape[0], dBx[0, 0].numel()), []
        for t in range(dBx.shape[1]):  # the flat state is the one carried: its .grad holds every later step's
            state = (dA[:, t] * state.view_as(dBx[:, t]) + dBx[:, t]).flatten(1)
            states.append(state)
        return states

    def readout(self, states):
        h, (x, z, C) = self._top
        top = self.blocks[-1]
        y = top.mixer.readout(states.unflatten(-1, (x.shape[-1], C.shape[-1])), x, z, C)
        return self.norm(h + top.dropout(y))
