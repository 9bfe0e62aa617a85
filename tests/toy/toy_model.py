"""A leaky-integrator RNN, written as a new user would: the model file the extension test drops into suite/models/."""
import torch
from pydantic import Field
from pydantic.dataclasses import dataclass
from torch import nn

from suite.models.base import ModelConfig
from suite.schema import STRICT


@dataclass(config=STRICT)
class ToyConfig(ModelConfig):
    leak: float = Field(default=0.5, gt=0, le=1)  # how much of the new state replaces the old each step


class Toy(nn.Module):
    """h_t = (1 - leak) h_{t-1} + leak tanh(W x_t + U h_{t-1}), stepped in Python; it exposes its states."""

    name = "toy"
    Config = ToyConfig
    search_space = {"model.leak": {"low": 0.1, "high": 1.0}}

    def __init__(self, input_size, cfg):
        super().__init__()
        self.inp, self.rec, self.leak = nn.Linear(input_size, cfg.hidden_size), nn.Linear(cfg.hidden_size, cfg.hidden_size), cfg.leak

    def unroll(self, x):
        h, states = x.new_zeros(x.shape[0], self.rec.in_features), []
        for t in range(x.shape[1]):
            h = (1 - self.leak) * h + self.leak * torch.tanh(self.inp(x[:, t]) + self.rec(h))
            states.append(h)
        return states

    def forward(self, x):
        return torch.stack(self.unroll(x), 1)
