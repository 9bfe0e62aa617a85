"""Vanilla RNN (tanh or ReLU), LSTM and GRU on PyTorch's fused kernels (cuDNN on GPU, oneDNN on CPU)."""
from __future__ import annotations

from typing import Literal

from pydantic.dataclasses import dataclass
from torch import nn

from suite.models.base import STACK_SPACE, ModelConfig
from suite.models.cell_loop import CellLoop
from suite.schema import STRICT


# Each model's default init is the scheme with the best mean rank of test loss / chance over the cpu profile's
# four tasks, 3 seeds each (README › Initialisation has the table): rnn keras, lstm keras, gru chrono,
# attn_rnn torch; the iRNN keeps the identity that defines it.
@dataclass(config=STRICT)
class RNNConfig(ModelConfig):
    nonlinearity: Literal["tanh", "relu"] = "tanh"
    init: Literal["torch", "keras", "orthogonal", "identity"] = "keras"  # suite/models/init.py


@dataclass(config=STRICT)
class GatedConfig(ModelConfig):
    init: Literal["torch", "keras", "orthogonal", "chrono"] = "torch"  # suite/models/init.py


@dataclass(config=STRICT)
class LSTMConfig(GatedConfig):
    init: Literal["torch", "keras", "orthogonal", "chrono"] = "keras"


@dataclass(config=STRICT)
class GRUConfig(GatedConfig):
    init: Literal["torch", "keras", "orthogonal", "chrono"] = "chrono"

KERNELS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class FusedRNN(nn.Module):
    """A stack of recurrent layers run by one fused kernel call: no Python loop over time."""

    name = kind = ""  # set by each registered model below
    Config = ModelConfig
    search_space = STACK_SPACE

    def __init__(self, input_size: int, cfg):
        super().__init__()
        extra = {"nonlinearity": cfg.nonlinearity} if self.kind == "rnn" else {}
        self.rnn = KERNELS[self.kind](input_size, cfg.hidden_size, cfg.num_layers, batch_first=True,
                                      dropout=cfg.dropout if cfg.num_layers > 1 else 0.0, **extra)

    def forward(self, x):  # (B, T, input) -> (B, T, hidden)
        return self.rnn(x)[0]

    def cell_loop(self) -> CellLoop:
        """A CellLoop holding the same weights: the fused kernel hides its states from autograd, this does not."""
        rnn = self.rnn
        loop = CellLoop(self.kind, rnn.input_size, rnn, getattr(rnn, "nonlinearity", "tanh"))
        loop.to(rnn.weight_ih_l0.device)  # rnn has hidden_size and num_layers, as a config would
        for i, cell in enumerate(loop.cells):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).data.copy_(getattr(rnn, f"{name}_l{i}").data)
        return loop

    def unroll(self, x) -> list:
        """h_1..h_T of the top layer, one tensor a step, in the autograd graph."""
        return self.cell_loop().unroll(x)

    def readout(self, h):
        return h


class RNN(FusedRNN):
    name = kind = "rnn"
    Config = RNNConfig
    search_space = {**STACK_SPACE, "model.init": {"choices": ["torch", "keras", "orthogonal", "identity"]}}


class LSTM(FusedRNN):
    name = kind = "lstm"
    Config = LSTMConfig
    search_space = {**STACK_SPACE, "model.init": {"choices": ["torch", "keras", "orthogonal", "chrono"]}}


class GRU(FusedRNN):
    name = kind = "gru"
    Config = GRUConfig
    search_space = {**STACK_SPACE, "model.init": {"choices": ["torch", "keras", "orthogonal", "chrono"]}}
