"""A small causal Transformer encoder: the baseline every long-range paper reports (Vaswani et al. 2017, pre-norm
as in GPT-2/nanoGPT, sinusoidal positions so any length works)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic.dataclasses import dataclass
from torch import nn

from suite.models.attention import causal_weights, heads
from suite.models.base import StackConfig
from suite.schema import STRICT, PosInt


@dataclass(config=STRICT)
class TransformerConfig(StackConfig):
    heads: PosInt = 4  # attention heads (each ceil(hidden / heads) wide)
    ff_mult: PosInt = 2  # the feed-forward layer's width, in hidden sizes


class Block(nn.Module):
    """Pre-norm: x + attention(norm(x)), then x + MLP(norm(x)); causal, so no step sees a later one."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.heads, self.head_dim = cfg.heads, -(-cfg.hidden_size // cfg.heads)
        inner = self.heads * self.head_dim
        self.norm1, self.norm2 = nn.LayerNorm(cfg.hidden_size), nn.LayerNorm(cfg.hidden_size)
        self.qkv, self.out = nn.Linear(cfg.hidden_size, 3 * inner), nn.Linear(inner, cfg.hidden_size)
        self.mlp = nn.Sequential(nn.Linear(cfg.hidden_size, cfg.ff_mult * cfg.hidden_size), nn.GELU(),
                                 nn.Linear(cfg.ff_mult * cfg.hidden_size, cfg.hidden_size))
        self.dropout = nn.Dropout(cfg.dropout)

    def heads_of(self, x):
        return heads(self.qkv(self.norm1(x)), self.heads, self.head_dim)

    def forward(self, x):
        q, k, v = self.heads_of(x)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.dropout(self.out(a.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)))
        return x + self.dropout(self.mlp(self.norm2(x)))


class Transformer(nn.Module):
    """Input projection plus sinusoidal positions, then `num_layers` causal pre-norm blocks and a final norm."""

    name = "transformer"
    Config = TransformerConfig
    search_space = {"model.num_layers": {"choices": [1, 2]}, "model.heads": {"choices": [1, 2, 4]},
                    "model.dropout": {"low": 0.0, "high": 0.3}}

    def __init__(self, input_size: int, cfg: TransformerConfig):
        super().__init__()
        self.inp = nn.Linear(input_size, cfg.hidden_size)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.norm = nn.LayerNorm(cfg.hidden_size)

    @staticmethod
    def positions(T: int, width: int, device) -> torch.Tensor:
        """(T, width) sinusoidal position codes."""
        pos = torch.arange(T, device=device, dtype=torch.float32)[:, None]
        freq = torch.exp(torch.arange(0, width, 2, device=device, dtype=torch.float32) * (-math.log(10_000.0) / width))
        codes = torch.zeros(T, width, device=device)
        codes[:, 0::2], codes[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)[:, : width // 2]
        return codes

    @torch.no_grad()
    def attention_weights(self, x):
        """(B, T, T) attention of the last block, averaged over heads."""
        h = self.inp(x) + self.positions(x.shape[1], self.norm.normalized_shape[0], x.device)
        for block in self.blocks[:-1]:
            h = block(h)
        q, k, _ = self.blocks[-1].heads_of(h)
        return causal_weights(q, k)

    def forward(self, x):  # (B, T, input) -> (B, T, hidden)
        h = self.inp(x) + self.positions(x.shape[1], self.norm.normalized_shape[0], x.device)
        for block in self.blocks:
            h = block(h)
        return self.norm(h)
