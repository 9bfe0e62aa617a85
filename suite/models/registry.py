"""The model registry: a plain dict filled by explicit imports. Add a model: its file in suite/models/, then its
import and its name in the tuple below (the order tables and plots show them in); check_model refuses a class
that lacks a required part."""
from __future__ import annotations

from torch import nn

from suite.models.attn_rnn import AttnRNN
from suite.models.base import check_model
from suite.models.fused import GRU, LSTM, RNN
from suite.models.irnn import IRNN
from suite.models.lru import LRU
from suite.models.transformer import Transformer

MODELS: dict[str, type[nn.Module]] = {m.name: check_model(m) for m in (
    RNN, IRNN, LSTM, GRU, AttnRNN, LRU, Transformer)}
