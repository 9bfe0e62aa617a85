"""Vanilla RNN (tanh or ReLU), LSTM and GRU on PyTorch's fused kernels (cuDNN on GPU, oneDNN on CPU)."""
from __future__ import annotations

from typing import Literal

from pydantic.dataclasses import dataclass
from torch import nn

from suite.models.base import STACK_SPACE, StackConfig, init_space
from suite.models.stepped import SteppedRNN
from suite.schema import STRICT

RNNInit = Literal["torch", "keras", "orthogonal", "identity"]  # suite/models/init.py
GatedInit = Literal["torch", "keras", "orthogonal", "chrono"]


# Each model's default init is the scheme with the best mean rank of test loss / chance over the cpu profile's
# four tasks, 3 seeds each (README › Initialisation has the table).
@dataclass(config=STRICT)
class RNNConfig(StackConfig):
    nonlinearity: Literal["tanh", "relu"] = "tanh"
    init: RNNInit = "keras"


@dataclass(config=STRICT)
class GatedConfig(StackConfig):
    init: GatedInit = "torch"


@dataclass(config=STRICT)
class LSTMConfig(GatedConfig):
    init: GatedInit = "keras"


@dataclass(config=STRICT)
class GRUConfig(GatedConfig):
    init: GatedInit = "chrono"


KERNELS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class FusedRNN(nn.Module):
    """A stack of recurrent layers run by one fused kernel call: no Python loop over time."""

    name = family = ""  # set by each registered model below: its name, and the kernel family it runs
    Config = StackConfig
    search_space = STACK_SPACE

    def __init__(self, input_size: int, cfg):
        super().__init__()
        extra = {"nonlinearity": cfg.nonlinearity} if self.family == "rnn" else {}
        self.rnn = KERNELS[self.family](input_size, cfg.hidden_size, cfg.num_layers, batch_first=True,
                                        dropout=cfg.dropout if cfg.num_layers > 1 else 0.0, **extra)

    def forward(self, x):  # (B, T, input) -> (B, T, hidden)
        return self.rnn(x)[0]

    def stepped(self) -> SteppedRNN:
        """A SteppedRNN holding the same weights: the fused kernel hides its states from autograd, this does not."""
        rnn = self.rnn
        loop = SteppedRNN(self.family, rnn.input_size, rnn, getattr(rnn, "nonlinearity", "tanh"))
        loop.to(rnn.weight_ih_l0.device, rnn.weight_ih_l0.dtype)  # rnn has hidden_size and num_layers as a config
        for i, layer in enumerate(loop.layers):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(layer, name).data.copy_(getattr(rnn, f"{name}_l{i}").data)
        return loop

    def unroll(self, x) -> list:
        """h_1..h_T of the top layer, one tensor per step, in the autograd graph."""
        return self.stepped().unroll(x)

    def readout(self, h):
        return h


class RNN(FusedRNN):
    name = family = "rnn"
    Config = RNNConfig
    search_space = {**STACK_SPACE, **init_space(RNNConfig)}


class LSTM(FusedRNN):
    name = family = "lstm"
    Config = LSTMConfig
    search_space = {**STACK_SPACE, **init_space(LSTMConfig)}


class GRU(FusedRNN):
    name = family = "gru"
    Config = GRUConfig
    search_space = {**STACK_SPACE, **init_space(GRUConfig)}
