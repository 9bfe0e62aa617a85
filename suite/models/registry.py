"""The model registry: a plain dict filled by explicit imports. Add a model: its file in suite/models/, then its
import and its name in the tuple below (the order tables and plots show them in)."""
from __future__ import annotations

from torch import nn

from suite.models.attn_rnn import AttnRNN
from suite.models.fused import GRU, LSTM, RNN
from suite.models.irnn import IRNN
from suite.models.lru import LRU
from suite.models.transformer import Transformer

MODELS: dict[str, type[nn.Module]] = {m.name: m for m in (RNN, IRNN, LSTM, GRU, AttnRNN, LRU, Transformer)}
