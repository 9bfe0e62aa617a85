"""The settings every model shares, and the contract a model file meets.

A model is one file in suite/models/ plus one registry line in suite/models/registry.py: an nn.Module
class with
  name            the registry key (rnn, lstm, ...)
  Config          its settings: a pydantic dataclass extending ModelConfig with its own fields
  search_space    its own tuning ranges ({"model.x": {low, high} | {choices}}); the train.* ranges are shared
  __init__(input_size, cfg) and forward(x): (B, T, input_size) -> (B, T, cfg.hidden_size)
and, optionally, what it can do beyond that (asked for by name, never by model):
  forward(x, last_only=True)   may compute only the last step when only that one is read
  attention_weights(x)         (B, T, T) attention of each step over the past: attention maps
  unroll(x) / readout(h)       its states h_1..h_T, one tensor a step, and the outputs from them: gradient flow
  cell_loop()                  the same recurrence stepped in Python: the speed harness's fused-vs-loop figure
  base_model(cfg)              the registered model it builds on: the speed harness's overhead figure
"""
from __future__ import annotations

from pydantic.dataclasses import dataclass

from suite.schema import STRICT, Fraction, PosInt


@dataclass(config=STRICT)
class ModelConfig:
    hidden_size: PosInt = 128  # units per recurrent layer (solved from param_budget when that is set)
    num_layers: PosInt = 1  # stacked recurrent layers
    dropout: Fraction = 0.0  # between stacked layers
    param_budget: PosInt | None = None  # total parameters, head included; every model lands within 5%


# Tuning ranges every recurrent model of the registry shares (suite/tuning/space.py adds the train.* ones).
STACK_SPACE = {
    "model.num_layers": {"choices": [1, 2]},
    "model.dropout": {"low": 0.0, "high": 0.3},
}
