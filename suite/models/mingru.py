"""minGRU (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs All We Needed?", arXiv 2410.01201).

The math is copied from lucidrains/minGRU-pytorch (minGRU_pytorch/minGRU.py; the block from minLM.py). The GRU
with its gates on x_t alone: z_t = σ(W_z x_t), h̃_t = g(W_h x_t), h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t, with
g(x) = x + 0.5 for x >= 0, σ(x) below (the paper's B.3: it keeps h positive, so the recurrence runs in log space).
Forward is the log-space parallel scan (parts.log_scan, with log(1 - z) = -softplus(k) and log z = -softplus(-k));
unroll steps the sequential form of the reference. Each layer is lucidrains' minLM block: x + W_o minGRU(norm(x)),
then x + MLP(norm(x)) (GELU, ff_mult wide), RMSNorm pre-norms, W_o only when the recurrence is wider than x
(expand, 1.5 in minLM). Weights keep PyTorch's default init, as the reference does (the paper gives none).
Differs from the reference: no token embedding (a linear encoder), dropout on both residual branches, no
optional causal conv (minLM's enable_conv, off by default). The block is shared with minlstm.py.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from pydantic.dataclasses import dataclass
from torch import nn

from suite.models.base import StackConfig
from suite.models.parts import BlockStack, RMSNorm, log_scan
from suite.schema import STRICT


@dataclass(config=STRICT)
class MinRNNConfig(StackConfig):
    expand: float = Field(default=1.5, ge=1, le=4)  # the recurrence's width over hidden_size (minLM's expansion)
    ff_mult: float = Field(default=4.0, gt=0, le=8)  # the MLP's width over hidden_size (minLM's ff_mult)


def g(x):
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x):
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


class MinGRUCore(nn.Module):
    """The recurrence on its own: inputs(x) are the per-step projections, forward scans them, step steps once."""

    parts = 2  # projections per unit: h̃ and z

    def __init__(self, width: int, cfg: MinRNNConfig):
        super().__init__()
        self.width = max(1, int(width * cfg.expand))
        self.proj = nn.Linear(width, self.parts * self.width, bias=False)

    def inputs(self, x):
        return self.proj(x)

    def forward(self, x):
        hidden, gate = self.inputs(x).chunk(2, dim=-1)
        return log_scan(-F.softplus(gate), -F.softplus(-gate) + log_g(hidden))

    def step(self, h, u):
        hidden, gate = u.chunk(2, dim=-1)
        z = torch.sigmoid(gate)
        return (1 - z) * h + z * g(hidden)


class MinRNNBlock(nn.Module):
    """x + dropout(W_o core(norm(x))), then x + dropout(MLP(norm(x)))."""

    def __init__(self, width: int, cfg: MinRNNConfig, core: nn.Module):
        super().__init__()
        self.norm, self.core, self.ff_norm = RMSNorm(width), core, RMSNorm(width)
        self.out = nn.Linear(core.width, width, bias=False) if core.width != width else nn.Identity()
        inner = max(1, round(cfg.ff_mult * width))
        self.ff = nn.Sequential(nn.Linear(width, inner), nn.GELU(), nn.Linear(inner, width))
        self.dropout = nn.Dropout(cfg.dropout)

    def after(self, h, x):
        """The block's output from the core's states h and the block's input x."""
        x = x + self.dropout(self.out(h))
        return x + self.dropout(self.ff(self.ff_norm(x)))

    def forward(self, x):
        return self.after(self.core(self.norm(x)), x)


class MinGRU(BlockStack):
    """A linear encoder, `num_layers` minGRU blocks, a final RMSNorm."""

    name = "mingru"
    Config = MinRNNConfig
    Core = MinGRUCore
    search_space = {"model.num_layers": {"choices": [1, 2]}, "model.dropout": {"low": 0.0, "high": 0.3},  # 3 layers:
                    "model.expand": {"low": 1.0, "high": 3.0}, "model.ff_mult": {"choices": [2, 4]}}  # 5% misses 12k

    def __init__(self, input_size: int, cfg: MinRNNConfig):
        width = cfg.hidden_size
        super().__init__(input_size, cfg, lambda: MinRNNBlock(width, cfg, self.Core(width, cfg)), RMSNorm(width))

    def unroll(self, x) -> list:
        """The top layer's states h_1..h_T, stepped one by one (gradient flow; the scan computes the same)."""
        h = self.below_top(x)
        top = self.blocks[-1]
        self._top = h
        u = top.core.inputs(top.norm(h))
        state, states = u.new_zeros(u.shape[0], top.core.width), []
        for t in range(u.shape[1]):
            state = top.core.step(state, u[:, t])
            states.append(state)
        return states

    def readout(self, states):
        top = self.blocks[-1]
        return self.norm(top.after(states, self._top))
