"""The settings every model shares, and the contract a model file meets.

A model is one file in suite/models/ plus one registry line in suite/models/registry.py: an nn.Module
class with
  name            the registry key (rnn, lstm, ...)
  Config          its settings: a pydantic dataclass extending ModelConfig (hidden_size, param_budget), or
                  StackConfig when it stacks layers (num_layers, dropout between them) and honours both
  __init__(input_size, cfg) and forward(x): (B, T, input_size) -> (B, T, cfg.hidden_size)
  search_space    optional: its own tuning ranges ({"model.x": {low, high} | {choices}}); the train.* ranges
                  are shared, and without it only those are searched
and, optionally, what it can do beyond that (CAPABILITIES: asked for by name, never by model):
  forward(x, last_only=True)   may compute only the last step when only that one is read
  attention_weights(x)         (B, T, T) attention of each step over the past: attention maps
  unroll(x) / readout(h)       its states h_1..h_T, one tensor per step, and the outputs from them: gradient flow
  stepped()                    the same recurrence stepped in Python: the speed harness's fused-vs-stepped figure
  base_model(cfg)              the registered model it builds on: the speed harness's overhead figure
A missing required part fails when the registry is imported (check_model), not in the middle of a run.
"""
from __future__ import annotations

import dataclasses
import typing

from pydantic.dataclasses import dataclass
from torch import nn

from suite.schema import STRICT, Fraction, PosInt

CAPABILITIES = ("last_only", "attention_weights", "unroll", "readout", "stepped", "base_model")


@dataclass(config=STRICT)
class ModelConfig:
    hidden_size: PosInt = 128  # units per recurrent layer (solved from param_budget when that is set)
    param_budget: PosInt | None = None  # total parameters, head included; every model lands within 5%


@dataclass(config=STRICT)
class StackConfig(ModelConfig):
    num_layers: PosInt = 1  # stacked recurrent layers
    dropout: Fraction = 0.0  # between stacked layers


# Tuning ranges every model that stacks layers shares (suite/tuning/space.py adds the train.* ones).
STACK_SPACE = {
    "model.num_layers": {"choices": [1, 2]},
    "model.dropout": {"low": 0.0, "high": 0.3},
}


def init_space(config: type) -> dict:
    """The tuning range of a Config's `init` field: every scheme its type allows."""
    return {"model.init": {"choices": list(typing.get_args(typing.get_type_hints(config)["init"]))}}


def check_model(model: type) -> type:
    """A model class as the registry takes it: a TypeError now, naming what it lacks, rather than mid-run."""
    missing = [a for a in ("name", "Config") if not getattr(model, a, None)]
    if not missing and not (dataclasses.is_dataclass(model.Config) and issubclass(model.Config, ModelConfig)):
        missing.append("Config as a pydantic dataclass extending ModelConfig")
    if model.forward is nn.Module.forward:
        missing.append("forward")
    if missing:
        raise TypeError(f"model {model.__name__}: missing {', '.join(missing)} (suite/models/base.py)")
    return model
