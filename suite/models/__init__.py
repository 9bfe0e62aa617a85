"""The model registry (a plain dict; add a model: one file here + its import and name below), the head and
matched-parameter sizing. What a model file provides: suite/models/base.py."""
from __future__ import annotations

import dataclasses
import inspect

import torch
from torch import nn

from suite.errors import UserError
from suite.models.attn_rnn import AttnRNN
from suite.models.base import ModelConfig
from suite.models.fused import GRU, LSTM, RNN

MODELS: dict[str, type[nn.Module]] = {m.name: m for m in (RNN, LSTM, GRU, AttnRNN)}

__all__ = ["MODELS", "ModelConfig", "Network", "count_params", "resolve"]


class Network(nn.Module):
    """A registered backbone plus a linear head, at every step or at the last."""

    def __init__(self, model: str, cfg: ModelConfig, input_size: int, n_outputs: int, every_step: bool):
        super().__init__()
        self.backbone = MODELS[model](input_size, cfg)
        self.head = nn.Linear(cfg.hidden_size, n_outputs)
        self.every_step = every_step
        # A backbone may offer to compute just the last step when only that one is read.
        self.last_only = not every_step and "last_only" in inspect.signature(self.backbone.forward).parameters

    def forward(self, x):
        if self.every_step:
            return self.head(self.backbone(x))
        return self.head((self.backbone(x, last_only=True) if self.last_only else self.backbone(x))[:, -1])


def count_params(model: str, cfg: ModelConfig, input_size: int, n_outputs: int) -> int:
    """Parameters of Network(...), counted on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        net = Network(model, cfg, input_size, n_outputs, every_step=True)
    return sum(p.numel() for p in net.parameters())


def resolve(model: str, cfg: ModelConfig, input_size: int, n_outputs: int) -> ModelConfig:
    """cfg with hidden_size solved for param_budget (the size whose count is closest)."""
    if cfg.param_budget is None:
        return cfg

    def size(h):
        return count_params(model, dataclasses.replace(cfg, hidden_size=h), input_size, n_outputs)

    lo, hi = 1, 8192  # parameters grow with hidden size: bisect for the first size at or over budget
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if size(mid) < cfg.param_budget else (lo, mid)
    best = min({max(lo - 1, 1), lo}, key=lambda h: abs(size(h) - cfg.param_budget))
    if abs(size(best) - cfg.param_budget) > 0.05 * cfg.param_budget:
        raise UserError(f"model.param_budget: {model} cannot get within 5% of {cfg.param_budget} parameters "
                        f"(nearest: {size(best)} at hidden_size {best}); choose a larger budget")
    return dataclasses.replace(cfg, hidden_size=best)
