"""The iRNN (Le, Jaitly & Hinton 2015): a ReLU RNN whose recurrent matrix starts as the identity.

The classic remedy for vanishing gradients that the long-dependency literature compares against; it is the
fused RNN with other defaults, so it runs on the same kernels and sizes as `rnn`.
"""
from __future__ import annotations

from typing import Literal

from pydantic.dataclasses import dataclass

from suite.models.base import STACK_SPACE
from suite.models.fused import RNN, RNNConfig
from suite.schema import STRICT


@dataclass(config=STRICT)
class IRNNConfig(RNNConfig):
    nonlinearity: Literal["tanh", "relu"] = "relu"
    init: Literal["identity", "torch", "keras", "orthogonal"] = "identity"  # suite/models/init.py (the first: default)


class IRNN(RNN):
    name = "irnn"
    Config = IRNNConfig
    search_space = {**STACK_SPACE, "model.init": {"choices": ["identity", "orthogonal"]}}
