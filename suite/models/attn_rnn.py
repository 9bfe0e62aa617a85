"""An RNN whose hidden states pass through causal multi-head self-attention, with a residual."""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic.dataclasses import dataclass
from torch import nn

from suite.models.attention import causal_weights, heads
from suite.models.base import STACK_SPACE, init_space
from suite.models.fused import GRU, LSTM, GatedConfig
from suite.schema import STRICT, PosInt


@dataclass(config=STRICT)
class AttnRNNConfig(GatedConfig):
    core: Literal["gru", "lstm"] = "gru"  # the recurrence whose states attention reads
    heads: PosInt = 4  # attention heads


class AttnRNN(nn.Module):
    """Fused GRU/LSTM, then pre-norm causal scaled-dot-product attention over its states.

    Each head is ceil(hidden / heads) wide, so any hidden size works and param_budget can be met closely.
    """

    name = "attn_rnn"
    Config = AttnRNNConfig
    search_space = {**STACK_SPACE, "model.heads": {"choices": [1, 2, 4, 8]}, "model.core": {"choices": ["gru", "lstm"]},
                    **init_space(AttnRNNConfig)}

    def __init__(self, input_size: int, cfg: AttnRNNConfig):
        super().__init__()
        self.rnn = {"gru": GRU, "lstm": LSTM}[cfg.core](input_size, cfg)
        self.heads, self.head_dim = cfg.heads, -(-cfg.hidden_size // cfg.heads)
        inner = self.heads * self.head_dim
        self.norm = nn.LayerNorm(cfg.hidden_size)
        self.qkv = nn.Linear(cfg.hidden_size, 3 * inner)
        self.out = nn.Linear(inner, cfg.hidden_size)

    @staticmethod
    def base_model(cfg: AttnRNNConfig) -> str:
        return cfg.core

    def _heads(self, h):
        """Queries, keys and values (B, heads, T, head_dim) of the normalised states."""
        return heads(self.qkv(self.norm(h)), self.heads, self.head_dim)

    def attend(self, h, last_only: bool = False):
        """The states plus causal attention over them (only the last step's when last_only)."""
        q, k, v = self._heads(h)
        if last_only:  # only the last output is used: one query over all steps, O(T) instead of O(T^2)
            q, h = q[:, :, -1:], h[:, -1:]
        a = F.scaled_dot_product_attention(q, k, v, is_causal=not last_only)  # no step sees a later one
        return h + self.out(a.transpose(1, 2).reshape(h.shape[0], h.shape[1], -1))

    @torch.no_grad()
    def attention_weights(self, x):
        """(B, T, T) attention of each output step over the past steps, averaged over heads."""
        q, k, _ = self._heads(self.rnn(x))
        return causal_weights(q, k)

    def unroll(self, x) -> list:
        return self.rnn.unroll(x)

    def readout(self, h):
        return self.attend(h)

    def forward(self, x, last_only: bool = False):  # (B, T, input) -> (B, T, hidden), or (B, 1, hidden)
        return self.attend(self.rnn(x), last_only)
