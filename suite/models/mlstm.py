"""The mLSTM (Beck et al. 2024, xLSTM: Extended Long Short-Term Memory, arXiv 2405.04517) in its xLSTM[1:0] block.

Each head keeps a matrix memory C_t = f_t C_{t-1} + i_t k_t v_tᵀ and a normaliser n_t = f_t n_{t-1} + i_t k_t, read
as h_t = C_tᵀ q_t / max(|n_tᵀ q_t|, 1), with an exponential input gate i_t = exp(ĩ_t) and a sigmoid forget gate; the
stabiliser m_t = max(log f_t + m_{t-1}, ĩ_t) keeps every exp() argument <= 0 (C and n are stored times exp(-m_t)).
The math is NX-AI/xlstm's xlstm/blocks/mlstm/backends.py: forward runs `parallel_stabilized_simple` (the quadratic
form (QKᵀ/√d ⊙ D) V with the log-gate matrix D, stabilised row-wise), unroll `recurrent_step_stabilized_simple`.
The block is xlstm/blocks/mlstm/layer.py and cell.py: up-projection by proj_factor into an mLSTM branch and an
output-gate branch z, causal conv + SiLU feeding q and k (block-diagonal projections), v from the pre-conv branch,
gates from [q, k, v], a group norm per head, a learnable skip, ⊙ silu(z), a down-projection; pre-norm residual.
Where ours differs: the reference adds eps=1e-6 to the stabilised denominator, which makes its two forms differ by
~1e-6 relative (their stabilisers differ); we leave it out (max(·, exp(-m)) > 0 already), so both forms compute the
same function. The inner width is rounded up to a multiple of lcm(heads, qkv_block), not of 64; 2 heads and q/k/v
blocks of 2 (the paper: 4 and 4) let it move in steps of 2, which small parameter budgets need.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field
from pydantic.dataclasses import dataclass
from torch import nn

from suite.models.base import StackConfig
from suite.models.parts import BlockStack, CausalConv
from suite.schema import STRICT, PosInt


@dataclass(config=STRICT)
class MLSTMConfig(StackConfig):
    heads: PosInt = 2  # memory heads (the paper: 4); head width = inner width / heads
    proj_factor: float = Field(default=2.0, gt=0, le=8)  # inner width / hidden_size (the paper: 2)
    conv_width: PosInt = 4  # the causal conv before q and k (the paper: 4)
    qkv_block: PosInt = 2  # q, k, v projections are block-diagonal with blocks this wide (the paper: 4)


def parallel(q, k, v, i_pre, f_pre):
    """h̃ for every step at once: q, k, v (B, NH, T, DH), gate pre-activations (B, NH, T) -> (B, NH, T, DH)."""
    T, DH = q.shape[2], q.shape[3]
    log_f = F.logsigmoid(f_pre).cumsum(-1)
    log_d = log_f[..., :, None] - log_f[..., None, :] + i_pre[..., None, :]  # Σ_{s<r<=t} log f_r + ĩ_s
    log_d = log_d.masked_fill(~torch.ones(T, T, dtype=torch.bool, device=q.device).tril(), -math.inf)
    m = log_d.amax(-1, keepdim=True)  # the row-wise stabiliser
    c = (q @ k.transpose(-2, -1) / math.sqrt(DH)) * torch.exp(log_d - m)
    return c / torch.maximum(c.sum(-1, keepdim=True).abs(), torch.exp(-m)) @ v


def step(state, q, k, v, i_pre, f_pre):
    """One stabilised step: state (C (B, NH, DH, DH), n (B, NH, DH), m (B, NH)); q, k, v (B, NH, DH)."""
    C, n, m = state
    log_f = F.logsigmoid(f_pre)
    m_new = torch.maximum(log_f + m, i_pre)
    f, i = torch.exp(log_f + m - m_new)[..., None], torch.exp(i_pre - m_new)[..., None]
    k = k / math.sqrt(k.shape[-1])
    return f[..., None] * C + i[..., None] * k[..., :, None] * v[..., None, :], f * n + i * k, m_new


def read(C, n, m, q):
    """h̃ = C̃ᵀq / max(|ñᵀq|, exp(-m)) for states and queries with any leading dims (…, DH, DH), (…, DH), (…)."""
    num = (q[..., :, None] * C).sum(-2)
    return num / torch.maximum((q * n).sum(-1).abs(), torch.exp(-m))[..., None]


class MLSTMLayer(nn.Module):
    def __init__(self, width: int, cfg: MLSTMConfig):
        super().__init__()
        unit = math.lcm(cfg.heads, cfg.qkv_block)
        inner = unit * math.ceil(cfg.proj_factor * width / unit)
        self.heads, self.inner, self.block = cfg.heads, inner, cfg.qkv_block
        small = math.sqrt(2 / (5 * width))  # "small init" (Nguyen & Salazar 2019), as layer.py's reset_parameters
        self.up = nn.Linear(width, 2 * inner, bias=False)
        nn.init.normal_(self.up.weight, std=small)
        self.conv = CausalConv(inner, cfg.conv_width)
        self.qkv = nn.Parameter(torch.randn(3, inner // cfg.qkv_block, cfg.qkv_block, cfg.qkv_block) * small)
        self.gates = nn.Linear(3 * inner, 2 * cfg.heads)  # input then forget gate pre-activations, per head
        nn.init.zeros_(self.gates.weight)  # cell.py: zero weights, ĩ bias ~ N(0, 0.1), forget bias linspace(3, 6)
        self.gates.bias = nn.Parameter(torch.cat([0.1 * torch.randn(cfg.heads), torch.linspace(3.0, 6.0, cfg.heads)]))
        self.norm_weight = nn.Parameter(torch.ones(inner))  # the per-head group norm's scale
        self.skip = nn.Parameter(torch.ones(inner))
        self.down = nn.Linear(inner, width, bias=False)
        nn.init.normal_(self.down.weight, std=2 / cfg.num_layers / math.sqrt(width))  # wang_init_

    def heads_of(self, x):  # (B, T, inner) -> (B, NH, T, DH)
        return x.view(*x.shape[:2], self.heads, -1).transpose(1, 2)

    def inputs(self, x):
        """q, k, v (B, NH, T, DH), ĩ and f̃ (B, NH, T), and what the output needs: the conv branch and z."""
        a, z = self.up(x).chunk(2, -1)
        c = F.silu(self.conv(a))
        q, k, v = (torch.einsum("btnd,nod->btno", s.view(*s.shape[:2], -1, self.block), w).flatten(2)
                   for s, w in zip((c, c, a), self.qkv, strict=True))
        i_pre, f_pre = self.gates(torch.cat([q, k, v], -1)).transpose(1, 2).chunk(2, 1)
        return (*map(self.heads_of, (q, k, v)), i_pre, f_pre), (c, z)

    def output(self, h, c, z):
        """h̃ (B, T, NH, DH) -> group norm per head, + skip ⊙ conv branch, ⊙ silu(z), down-projection."""
        h = F.group_norm(h.reshape(-1, self.inner), self.heads, self.norm_weight, eps=1e-5).view_as(c)
        return self.down((h + self.skip * c) * F.silu(z))

    def forward(self, x):
        qkvif, (c, z) = self.inputs(x)
        return self.output(parallel(*qkvif).transpose(1, 2), c, z)


class MLSTMBlock(nn.Module):
    """x + dropout(mLSTM(norm(x)))."""

    def __init__(self, width: int, cfg: MLSTMConfig):
        super().__init__()
        self.norm, self.mlstm = nn.LayerNorm(width, bias=False), MLSTMLayer(width, cfg)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return x + self.dropout(self.mlstm(self.norm(x)))


class MLSTM(BlockStack):
    """A linear encoder, `num_layers` mLSTM blocks, a final norm."""

    name = "mlstm"
    Config = MLSTMConfig
    search_space = {"model.num_layers": {"choices": [1, 2, 3]}, "model.dropout": {"low": 0.0, "high": 0.3},
                    "model.heads": {"choices": [1, 2]}, "model.proj_factor": {"choices": [1.0, 2.0]}}

    def __init__(self, input_size: int, cfg: MLSTMConfig):
        super().__init__(input_size, cfg, lambda: MLSTMBlock(cfg.hidden_size, cfg),
                         nn.LayerNorm(cfg.hidden_size, bias=False))

    def unroll(self, x) -> list:
        """The top layer's stabilised states (C̃, ñ, m) after each step, flattened to (B, NH·(DH² + DH + 1))."""
        h = self.below_top(x)
        top = self.blocks[-1]
        (q, k, v, i_pre, f_pre), (c, z) = top.mlstm.inputs(top.norm(h))
        self._top = (h, q.transpose(1, 2), c, z)
        B, NH, T, DH = q.shape
        sizes, states = [NH * DH * DH, NH * DH, NH], [q.new_zeros(B, NH * (DH * DH + DH + 1))]
        for t in range(T):  # each step reads the flat state it returned: gradients reach h_t through h_{t+1}
            C, n, m = states[-1].split(sizes, -1)
            state = step((C.view(B, NH, DH, DH), n.view(B, NH, DH), m), q[:, :, t], k[:, :, t], v[:, :, t],
                         i_pre[..., t], f_pre[..., t])
            states.append(torch.cat([s.flatten(1) for s in state], 1))
        return states[1:]

    def readout(self, states):
        h, q, c, z = self._top
        top = self.blocks[-1]
        B, T, NH, DH = q.shape
        C, n, m = states.split([NH * DH * DH, NH * DH, NH], -1)
        y = read(C.view(B, T, NH, DH, DH), n.view(B, T, NH, DH), m, q)
        return self.norm(h + top.dropout(top.mlstm.output(y, c, z)))
