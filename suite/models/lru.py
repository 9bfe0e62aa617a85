"""The Linear Recurrent Unit (Orvieto et al. 2023, Resurrecting Recurrent Neural Networks for Long Sequences).

Each layer runs a diagonal complex linear recurrence h_t = λ ⊙ h_{t-1} + γ ⊙ B x_t with λ = exp(-exp(ν) + i exp(θ))
(stable by construction, its modulus initialised on a ring [r_min, r_max]) and the normalisation γ = sqrt(1 - |λ|²),
read out as y_t = Re(C h_t) + D ⊙ x_t; a GLU MLP with a residual and a pre-norm follows, as in the paper's
blocks. Because the recurrence is linear with a time-invariant λ, it runs as a parallel scan: log2 T vectorised
steps (each adds λ^d h_{t-d}), not a Python loop over time.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field
from pydantic.dataclasses import dataclass
from torch import nn

from suite.models.base import StackConfig
from suite.models.parts import BlockStack
from suite.schema import STRICT


@dataclass(config=STRICT)
class LRUConfig(StackConfig):
    r_min: float = Field(default=0.9, ge=0, lt=1)  # the ring |λ| starts on (the paper: 0.9 for long sequences)
    r_max: float = Field(default=0.999, gt=0, lt=1)
    max_phase: float = Field(default=2 * math.pi, gt=0)  # λ's phase starts in [0, max_phase]


def scan(lam: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """h_t = lam ⊙ h_{t-1} + u_t for t = 1..T (h_0 = 0), u: (B, T, N) complex, in log2 T vectorised steps."""
    h, power, d, T = u, lam, 1, u.shape[1]
    while d < T:
        h = torch.cat([h[:, :d], h[:, d:] + power * h[:, :-d]], dim=1)
        power, d = power * power, 2 * d
    return h


class LRULayer(nn.Module):
    def __init__(self, width: int, cfg: LRUConfig):
        super().__init__()
        n = width
        u1, u2 = torch.rand(n), torch.rand(n)
        modulus = torch.sqrt(u1 * (cfg.r_max**2 - cfg.r_min**2) + cfg.r_min**2)  # uniform on the ring's area
        self.nu_log = nn.Parameter(torch.log(-torch.log(modulus)))
        self.theta_log = nn.Parameter(torch.log(cfg.max_phase * u2 + 1e-8))
        self.gamma_log = nn.Parameter(torch.log(torch.sqrt(1 - modulus**2)))
        self.B_re, self.B_im = (nn.Parameter(torch.randn(n, width) / math.sqrt(2 * width)) for _ in range(2))
        self.C_re, self.C_im = (nn.Parameter(torch.randn(width, n) / math.sqrt(n)) for _ in range(2))
        self.D = nn.Parameter(torch.randn(width))

    def lam(self) -> torch.Tensor:
        return torch.exp(torch.complex(-torch.exp(self.nu_log), torch.exp(self.theta_log)))

    def inputs(self, x) -> torch.Tensor:
        """γ ⊙ B x_t for every step: (B, T, N) complex."""
        B = torch.complex(self.B_re, self.B_im)
        return (x.to(B.dtype) @ B.transpose(0, 1)) * torch.exp(self.gamma_log)

    def readout(self, h, x) -> torch.Tensor:
        return (h @ torch.complex(self.C_re, self.C_im).transpose(0, 1)).real + self.D * x

    def forward(self, x):
        return self.readout(scan(self.lam(), self.inputs(x.float())), x)


class LRUBlock(nn.Module):
    """x + dropout(GLU(GELU(LRU(norm(x)))))."""

    def __init__(self, width: int, cfg: LRUConfig):
        super().__init__()
        self.norm, self.lru = nn.LayerNorm(width), LRULayer(width, cfg)
        self.glu, self.dropout = nn.Linear(width, 2 * width), nn.Dropout(cfg.dropout)

    def after(self, y, x):
        return x + self.dropout(F.glu(self.glu(F.gelu(y)), dim=-1))

    def forward(self, x):
        return self.after(self.lru(self.norm(x)), x)


class LRU(BlockStack):
    """A linear encoder, `num_layers` LRU blocks, a final norm."""

    name = "lru"
    Config = LRUConfig
    search_space = {"model.num_layers": {"choices": [1, 2, 3]}, "model.r_min": {"low": 0.0, "high": 0.95},
                    "model.dropout": {"low": 0.0, "high": 0.3}}

    def __init__(self, input_size: int, cfg: LRUConfig):
        super().__init__(input_size, cfg, lambda: LRUBlock(cfg.hidden_size, cfg), nn.LayerNorm(cfg.hidden_size))

    def unroll(self, x) -> list:
        """The top layer's complex states h_1..h_T, stepped one by one (gradient flow; the scan computes the same)."""
        h = self.below_top(x)
        top = self.blocks[-1]
        z = top.norm(h)
        self._top = (h, z)
        u, lam = top.lru.inputs(z.float()), top.lru.lam()
        state, states = torch.zeros_like(u[:, 0]), []
        for t in range(u.shape[1]):
            state = lam * state + u[:, t]
            states.append(state)
        return states

    def readout(self, states):
        h, z = self._top
        top = self.blocks[-1]
        return self.norm(top.after(top.lru.readout(states, z), h))
