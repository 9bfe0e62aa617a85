"""The model registry (a plain dict), the shared settings and matched-parameter sizing."""
from __future__ import annotations

import dataclasses
from functools import partial
from typing import Literal

import torch
from pydantic.dataclasses import dataclass
from torch import nn

from suite.errors import UserError
from suite.models.attn_rnn import AttnRNN
from suite.models.fused import FusedRNN
from suite.schema import STRICT, Fraction, PosInt

MODELS = {
    "rnn": partial(FusedRNN, "rnn"),
    "lstm": partial(FusedRNN, "lstm"),
    "gru": partial(FusedRNN, "gru"),
    "attn_rnn": AttnRNN,
}


@dataclass(config=STRICT)
class ModelConfig:
    hidden_size: PosInt = 128  # units per recurrent layer (solved from param_budget when that is set)
    num_layers: PosInt = 1  # stacked recurrent layers
    dropout: Fraction = 0.0  # between stacked layers
    param_budget: PosInt | None = None  # total parameters, head included; every model lands within 5%
    cell: Literal["gru", "lstm"] = "gru"  # attn_rnn: its recurrent core
    heads: PosInt = 4  # attn_rnn: attention heads


class Network(nn.Module):
    """A registered backbone plus a linear head, at every step or at the last.

    A backbone maps (B, T, input) to (B, T, hidden_size) and takes `last_only`, a hint it may ignore.
    """

    def __init__(self, model: str, cfg: ModelConfig, input_size: int, n_outputs: int, every_step: bool):
        super().__init__()
        self.backbone = MODELS[model](input_size, cfg)
        self.head = nn.Linear(cfg.hidden_size, n_outputs)
        self.every_step = every_step

    def forward(self, x):
        if self.every_step:
            return self.head(self.backbone(x))
        # A backbone may return just the last step when told only that one is used.
        return self.head(self.backbone(x, last_only=True)[:, -1])


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
