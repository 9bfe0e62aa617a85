"""Causal multi-head attention's shared pieces: queries, keys and values by head, and the weights as maps."""
from __future__ import annotations

import torch


def heads(qkv: torch.Tensor, n: int, width: int) -> torch.Tensor:
    """A (B, T, 3 * n * width) projection as queries, keys and values: (3, B, n, T, width)."""
    B, T, _ = qkv.shape
    return qkv.view(B, T, 3, n, width).permute(2, 0, 3, 1, 4)


@torch.no_grad()
def causal_weights(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """(B, T, T) softmax attention of each step over itself and the steps before, averaged over heads."""
    T = q.shape[2]
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return scores.softmax(-1).mean(1)
