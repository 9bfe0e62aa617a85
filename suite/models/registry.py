"""The model registry: a plain dict filled by explicit imports. Add a model: its file in suite/models/, then its
import and its name in the tuple below (the order tables and plots show them in); check_model refuses a class
that lacks a required part."""
from __future__ import annotations

from torch import nn

from suite.models.attn_rnn import AttnRNN
from suite.models.base import check_model
from suite.models.fused import GRU, LSTM, RNN
from suite.models.gated_deltanet import GatedDeltaNet
from suite.models.hawk import Hawk
from suite.models.irnn import IRNN
from suite.models.lru import LRU
from suite.models.mamba import Mamba
from suite.models.mamba2 import Mamba2
from suite.models.mingru import MinGRU
from suite.models.minlstm import MinLSTM
from suite.models.mlstm import MLSTM
from suite.models.s4d import S4D
from suite.models.transformer import Transformer

MODELS: dict[str, type[nn.Module]] = {m.name: check_model(m) for m in (
    RNN, IRNN, LSTM, GRU, AttnRNN, LRU, Transformer,  # the classics, the LRU and the Transformer baseline
    MinGRU, MinLSTM, Hawk,  # gated linear recurrences trained by a parallel scan
    S4D, Mamba, Mamba2,  # state space models: time-invariant, then selective; then the matrix memories
    MLSTM, GatedDeltaNet)}
