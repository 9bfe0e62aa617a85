"""Hawk (De, Smith, Fernando, Botev, Cristian-Muraru, Gu et al. 2024, "Griffin: Mixing Gated Linear Recurrences
with Local Attention for Efficient Language Models", arXiv 2402.19427): Griffin without its local attention.

The math is copied from google-deepmind/recurrentgemma (recurrentgemma/torch/layers.py RGLRU, rnn_scan;
modules.py RecurrentBlock, MLPBlock, ResidualBlock). The RG-LRU: r_t = σ(W_a x_t + b_a), i_t = σ(W_x x_t + b_x),
a_t = a^(c r_t) with a = σ(Λ) and c = 8, h_t = a_t ⊙ h_{t-1} + sqrt(1 - a_t²) ⊙ (i_t ⊙ x_t). Each layer is a
pre-norm residual block in two parts: x + W_out(GeLU(W_y x̂) ⊙ RG-LRU(Conv1D(W_x x̂))) (x̂ = RMSNorm(x), the conv
depthwise and causal, width 4), then x + W_down(GeLU(W_gate x̂) ⊙ W_up x̂), the gated MLP (expansion M = 3).
The RG-LRU is linear in h, so it runs as parts.linear_scan. Initialisation is the reference's: weights N(0, 1/fan_in),
the output layers' scaled by 2 / num_layers, biases zero; Λ so that a^c is uniform in [0.9, 0.999] (the paper).
Differs from the paper and the reference: the gates W_a, W_x are dense, not block-diagonal (one block a head: at
our widths a head would hold a unit or two); the reference draws a itself, not a^c, on the ring [0.9, 0.999]; the
conv keeps PyTorch's default weights, not the reference's N(0, 0.01 / width), which leaves the recurrent branch ~10x
quieter at init (at 3k parameters the adding T=10 run then sat near chance for 300 steps: 0.68 of chance at seed 0,
0.009 with PyTorch's); a linear encoder, not a token embedding; dropout on both residual branches.
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

C = 8.0  # the RG-LRU's fixed exponent: a_t = a^(c r_t)


@dataclass(config=STRICT)
class HawkConfig(StackConfig):
    rnn_expand: float = Field(default=4 / 3, ge=1, le=4)  # the RG-LRU's width over hidden_size (the paper: 4/3)
    mlp_expand: float = Field(default=3.0, gt=0, le=8)  # the gated MLP's width over hidden_size (the paper: M = 3)
    conv_width: PosInt = 4  # the causal Conv1D's width before the RG-LRU (the paper: 4)
    a_min: float = Field(default=0.9, gt=0, lt=1)  # a^c starts uniform in [a_min, a_max] (the paper: 0.9, 0.999)
    a_max: float = Field(default=0.999, gt=0, lt=1)


class SqrtBoundDerivative(torch.autograd.Function):
    """sqrt with its derivative clipped at 1000, as the reference does (else NaN where a_t → 1)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sqrt(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / torch.sqrt(torch.clamp(4 * x, min=1e-6))


class RGLRU(nn.Module):
    def __init__(self, width: int, cfg: HawkConfig):
        super().__init__()
        self.gate_a, self.gate_x = nn.Linear(width, width), nn.Linear(width, width)
        for gate in (self.gate_a, self.gate_x):
            nn.init.normal_(gate.weight, std=math.sqrt(1 / width))
            nn.init.zeros_(gate.bias)
        a_c = cfg.a_min + (cfg.a_max - cfg.a_min) * torch.rand(width)
        self.a_param = nn.Parameter(torch.log(torch.expm1(-torch.log(a_c) / C)))  # softplus(a_param) = -log a

    def coefficients(self, x):
        """a_t and the normalised, gated input sqrt(1 - a_t²) ⊙ i_t ⊙ x_t, for every step."""
        log_a = -C * torch.sigmoid(self.gate_a(x)) * F.softplus(self.a_param)
        return torch.exp(log_a), SqrtBoundDerivative.apply(-torch.expm1(2 * log_a)) * torch.sigmoid(self.gate_x(x)) * x


class HawkBlock(nn.Module):
    """x + dropout(recurrent block(norm(x))), then x + dropout(gated MLP(norm(x)))."""

    def __init__(self, width: int, cfg: HawkConfig):
        super().__init__()
        rnn, mlp = max(1, round(cfg.rnn_expand * width)), max(1, round(cfg.mlp_expand * width))
        self.norm, self.mlp_norm = RMSNorm(width), RMSNorm(width)
        self.linear_y, self.linear_x = nn.Linear(width, rnn), nn.Linear(width, rnn)  # the gate and RG-LRU branches
        self.linear_out = nn.Linear(rnn, width)
        self.conv, self.rg_lru = CausalConv(rnn, cfg.conv_width), RGLRU(rnn, cfg)
        self.up, self.down = nn.Linear(width, 2 * mlp), nn.Linear(mlp, width)
        self.dropout = nn.Dropout(cfg.dropout)
        final = 2 / cfg.num_layers
        for layer, variance in ((self.linear_y, 1 / width), (self.linear_x, 1 / width), (self.up, 1 / width),
                                (self.linear_out, final / rnn), (self.down, final / mlp)):
            nn.init.normal_(layer.weight, std=math.sqrt(variance))
            nn.init.zeros_(layer.bias)
        nn.init.zeros_(self.conv.conv.bias)  # its weights keep PyTorch's init (see the module docstring)

    def branches(self, x):
        """The RG-LRU's a_t and inputs, and the GeLU gate branch, from the block's input x."""
        z = self.norm(x)
        a, b = self.rg_lru.coefficients(self.conv(self.linear_x(z)))
        return a, b, F.gelu(self.linear_y(z), approximate="tanh")

    def after(self, h, gate, x):
        """The block's output from the RG-LRU's states h, the gate branch and the block's input x."""
        x = x + self.dropout(self.linear_out(h * gate))
        value, up = self.up(self.mlp_norm(x)).chunk(2, dim=-1)
        return x + self.dropout(self.down(F.gelu(value, approximate="tanh") * up))

    def forward(self, x):
        a, b, gate = self.branches(x)
        return self.after(linear_scan(a, b), gate, x)


class Hawk(BlockStack):
    """A linear encoder, `num_layers` Hawk residual blocks, a final RMSNorm."""

    name = "hawk"
    Config = HawkConfig
    search_space = {"model.num_layers": {"choices": [1, 2, 3]}, "model.dropout": {"low": 0.0, "high": 0.3},
                    "model.rnn_expand": {"low": 1.0, "high": 2.0}, "model.mlp_expand": {"choices": [2, 3, 4]},
                    "model.a_min": {"low": 0.5, "high": 0.95}}

    def __init__(self, input_size: int, cfg: HawkConfig):
        super().__init__(input_size, cfg, lambda: HawkBlock(cfg.hidden_size, cfg), RMSNorm(cfg.hidden_size))

    def unroll(self, x) -> list:
        """The top layer's RG-LRU states h_1..h_T, stepped one by one (gradient flow; the scan computes the same)."""
        h = self.below_top(x)
        a, b, gate = self.blocks[-1].branches(h)
        self._top = (gate, h)
        state, states = torch.zeros_like(b[:, 0]), []
        for t in range(b.shape[1]):
            state = a[:, t] * state + b[:, t]
            states.append(state)
        return states

    def readout(self, states):
        return self.norm(self.blocks[-1].after(states, *self._top))
