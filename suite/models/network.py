"""A registered backbone plus its head, initialised by its scheme, and matched-parameter sizing."""
from __future__ import annotations

import dataclasses
import inspect
import typing

import torch
from torch import nn

from suite.errors import UserError
from suite.models.base import ModelConfig
from suite.models.init import initialise
from suite.models.registry import MODELS


def init_schemes(model: str) -> list[str]:
    """The initialisation schemes a model supports (its Config's `init` choices); [] if it has no `init`."""
    hints = typing.get_type_hints(MODELS[model].Config)
    return list(typing.get_args(hints["init"])) if "init" in hints else []


class Network(nn.Module):
    """A registered backbone plus a linear head, at every step or at the last, initialised by its Config's
    `init` scheme (suite/models/init.py; `steps`, the task's input length, sets chrono's range)."""

    def __init__(self, model: str, cfg: ModelConfig, input_size: int, n_outputs: int, every_step: bool,
                 steps: int | None = None, init: bool = True):
        super().__init__()
        self.backbone = MODELS[model](input_size, cfg)
        self.head = nn.Linear(cfg.hidden_size, n_outputs)
        self.every_step = every_step
        if init and getattr(cfg, "init", "torch") != "torch":
            if steps is None and cfg.init == "chrono":
                raise ValueError("model.init: chrono needs the task's length (Network's `steps`)")
            initialise(self, cfg.init, steps or 0)
        # A backbone may offer to compute just the last step when only that one is read.
        self.last_only = not every_step and "last_only" in inspect.signature(self.backbone.forward).parameters

    def forward(self, x):
        if self.every_step:
            return self.head(self.backbone(x))
        return self.head((self.backbone(x, last_only=True) if self.last_only else self.backbone(x))[:, -1])


def count_params(model: str, cfg: ModelConfig, input_size: int, n_outputs: int) -> int:
    """Parameters of Network(...), counted on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        net = Network(model, cfg, input_size, n_outputs, every_step=True, init=False)
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
