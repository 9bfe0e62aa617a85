"""S4D (Gu, Gupta, Goel & Ré 2022, "On the Parameterization and Initialization of Diagonal State Space Models",
arXiv 2206.11893).

The math is copied from state-spaces/s4 (models/s4/s4d.py: S4DKernel, S4D; S4D-Inv from
src/models/sequence/kernels/dplr.py). Each of the H channels is a diagonal complex SSM with N/2 modes (their
conjugates implied), discretised by zero-order hold: h_t = exp(Δ A) ⊙ h_{t-1} + (exp(Δ A) - 1) / A ⊙ x_t (B = 1,
C carries it), y_t = 2 Re(C h_t) + D x_t, A = -exp(log A_re) + i A_im. Forward computes it as a causal convolution
with the Vandermonde kernel K_l = 2 Re(Σ_n C_n (exp(Δ A_n) - 1) / A_n exp(Δ A_n l)), by FFT; unroll steps the
recurrence. The layer is the reference's S4D module: SSM, GELU, then a GLU output linear (H -> 2H -> H); the block
is x + dropout(S4D(LayerNorm(x))), pre-norm, as in the reference's example.py. Init (the paper, §4): log Δ uniform
in [log 0.001, log 0.1], C ~ CN(0, 1), Re A = -1/2, A_im = π n (S4D-Lin) or N/π (N/(2n+1) - 1) (S4D-Inv).
Differs: N defaults to 16, not 64 (a channel's SSM holds 2N reals, C and A, against ~2H GLU weights: at 12k
parameters in one layer N = 64 spends ~53% of them on kernels at H = 50, N = 16 ~18% at H = 67); no dropout
after the GELU and no separate learning rate or weight decay for Δ, A (the suite's optimiser, the same for all).
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from pydantic.dataclasses import dataclass
from torch import nn

from suite.models.base import StackConfig
from suite.models.parts import BlockStack
from suite.schema import STRICT


@dataclass(config=STRICT)
class S4DConfig(StackConfig):
    d_state: int = Field(default=16, ge=2, multiple_of=2)  # N: states a channel, N/2 conjugate pairs (the paper: 64)
    ssm_init: Literal["lin", "inv"] = "lin"  # A's imaginary parts: S4D-Lin or S4D-Inv (the paper's §4)
    dt_min: float = Field(default=0.001, gt=0)  # Δ starts log-uniform in [dt_min, dt_max]
    dt_max: float = Field(default=0.1, gt=0)


class S4DLayer(nn.Module):
    """The diagonal SSM on each channel, plus its D skip: (B, T, H) -> (B, T, H), before the GELU."""

    def __init__(self, width: int, cfg: S4DConfig):
        super().__init__()
        H, N = width, cfg.d_state
        self.log_dt = nn.Parameter(torch.rand(H) * (math.log(cfg.dt_max) - math.log(cfg.dt_min)) + math.log(cfg.dt_min))
        self.C = nn.Parameter(torch.randn(H, N // 2, 2) * math.sqrt(0.5))  # complex CN(0, 1), stored as (re, im)
        self.log_A_real = nn.Parameter(torch.log(0.5 * torch.ones(H, N // 2)))
        n = torch.arange(N // 2, dtype=torch.float32).expand(H, N // 2)
        self.A_imag = nn.Parameter((math.pi * n if cfg.ssm_init == "lin" else N / math.pi * (N / (2 * n + 1) - 1)))
        self.D = nn.Parameter(torch.randn(H))

    def modes(self):
        """A and Δ A, (H, N/2) complex."""
        A = torch.complex(-torch.exp(self.log_A_real), self.A_imag)
        return A, A * torch.exp(self.log_dt)[:, None]

    def discrete(self):
        """exp(Δ A) and the ZOH input (exp(Δ A) - 1) / A, both (H, N/2) complex."""
        A, dtA = self.modes()
        return torch.exp(dtA), (torch.exp(dtA) - 1) / A

    def kernel(self, L: int) -> torch.Tensor:
        """K_l for l = 0..L-1, (H, L): the Vandermonde product of C (exp(Δ A) - 1) / A with exp(Δ A l)."""
        A, dtA = self.modes()
        C = torch.view_as_complex(self.C) * (torch.exp(dtA) - 1) / A
        steps = torch.arange(L, device=dtA.device, dtype=self.log_dt.dtype)
        return 2 * torch.einsum("hn,hnl->hl", C, torch.exp(dtA[..., None] * steps)).real

    def readout(self, h, x):
        """y_t = 2 Re(C h_t) + D x_t from the states h (B, T, H, N/2)."""
        return 2 * (h * torch.view_as_complex(self.C)).sum(-1).real + self.D * x

    def forward(self, x):
        L = x.shape[1]
        k = torch.fft.rfft(self.kernel(L).transpose(0, 1), n=2 * L, dim=0)  # (L + 1, H)
        y = torch.fft.irfft(torch.fft.rfft(x, n=2 * L, dim=1) * k, n=2 * L, dim=1)[:, :L]
        return y + self.D * x


class S4DBlock(nn.Module):
    """x + dropout(GLU(GELU(S4D(norm(x)))))."""

    def __init__(self, width: int, cfg: S4DConfig):
        super().__init__()
        self.norm, self.ssm = nn.LayerNorm(width), S4DLayer(width, cfg)
        self.glu, self.dropout = nn.Linear(width, 2 * width), nn.Dropout(cfg.dropout)

    def after(self, y, x):
        return x + self.dropout(F.glu(self.glu(F.gelu(y)), dim=-1))

    def forward(self, x):
        return self.after(self.ssm(self.norm(x)), x)


class S4D(BlockStack):
    """A linear encoder, `num_layers` S4D blocks, a final norm."""

    name = "s4d"
    Config = S4DConfig
    search_space = {"model.num_layers": {"choices": [1, 2, 3]}, "model.dropout": {"low": 0.0, "high": 0.3},
                    "model.d_state": {"choices": [8, 16, 32]}, "model.ssm_init": {"choices": ["lin", "inv"]},
                    "model.dt_max": {"low": 0.01, "high": 1.0}}

    def __init__(self, input_size: int, cfg: S4DConfig):
        super().__init__(input_size, cfg, lambda: S4DBlock(cfg.hidden_size, cfg), nn.LayerNorm(cfg.hidden_size))

    def unroll(self, x) -> list:
        """The top layer's complex states (B, H * N/2) after each step, stepped by the ZOH recurrence."""
        h = self.below_top(x)
        top = self.blocks[-1]
        z = top.norm(h)
        self._top = (h, z)
        dA, dB = top.ssm.discrete()
        state, states = torch.zeros(z.shape[0], dA.numel(), dtype=dA.dtype, device=z.device), []
        for t in range(z.shape[1]):  # the flat state is the one carried: its .grad holds every later step's
            state = (dA * state.view(-1, *dA.shape) + dB * z[:, t, :, None]).flatten(1)
            states.append(state)
        return states

    def readout(self, states):
        h, z = self._top
        top = self.blocks[-1]
        y = top.ssm.readout(states.unflatten(-1, top.ssm.A_imag.shape), z)
        return self.norm(top.after(y, h))
