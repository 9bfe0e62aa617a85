"""minLSTM (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs All We Needed?", arXiv 2410.01201).

The math is copied from lucidrains/minGRU-pytorch (minGRU_pytorch/minLSTM.py). The LSTM with its gates on x_t
alone and no output gate, its forget and input gates normalised to sum to one (the paper's length-independent
scaling, B.3): f_t = σ(W_f x_t), i_t = σ(W_i x_t), f'_t = f_t / (f_t + i_t), i'_t = i_t / (f_t + i_t),
h_t = f'_t ⊙ h_{t-1} + i'_t ⊙ g(W_h x_t). Forward runs it in log space (parts.log_scan, with d = softplus(-k_f) -
softplus(-k_i), log f' = -softplus(d), log i' = -softplus(-d)); unroll steps the sequential form. The block
(pre-norm, out projection, MLP) and the model are minGRU's (mingru.py, lucidrains' minLM with use_lstm), and so
are the differences from the reference.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from suite.models.mingru import MinGRU, MinGRUCore, g, log_g
from suite.models.parts import log_scan


class MinLSTMCore(MinGRUCore):
    """minGRU's core with a forget and an input gate in place of the update gate z."""

    parts = 3  # projections per unit: h̃, f and i

    def forward(self, x):
        hidden, f, i = self.inputs(x).chunk(3, dim=-1)
        diff = F.softplus(-f) - F.softplus(-i)
        return log_scan(-F.softplus(diff), -F.softplus(-diff) + log_g(hidden))

    def step(self, h, u):
        hidden, f, i = u.chunk(3, dim=-1)
        f, i = torch.sigmoid(f), torch.sigmoid(i)
        return (f * h + i * g(hidden)) / (f + i)


class MinLSTM(MinGRU):
    """A linear encoder, `num_layers` minLSTM blocks, a final RMSNorm."""

    name = "minlstm"
    Core = MinLSTMCore
