"""A recurrence stepped in Python with nn.*Cell: states exposed to autograd, and the speed baseline."""
from __future__ import annotations

import torch
from torch import nn

CELLS = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}


class CellLoop(nn.Module):
    """The same recurrence as nn.RNN/LSTM/GRU, one nn.*Cell call a step and layer."""

    def __init__(self, kind: str, input_size: int, cfg, nonlinearity: str = "tanh"):
        super().__init__()
        self.kind = kind
        extra = {"nonlinearity": nonlinearity} if kind == "rnn" else {}
        self.cells = nn.ModuleList(CELLS[kind](input_size if i == 0 else cfg.hidden_size, cfg.hidden_size, **extra)
                                   for i in range(cfg.num_layers))

    def unroll(self, x) -> list:
        """The top layer's states h_1..h_T, one tensor a step."""
        for cell in self.cells:
            h = x.new_zeros(x.shape[0], cell.hidden_size)
            state = (h, h) if self.kind == "lstm" else h
            outputs = []
            for t in range(x.shape[1]):
                state = cell(x[:, t], state)
                outputs.append(state[0] if self.kind == "lstm" else state)
            x = torch.stack(outputs, 1)
        return outputs

    def forward(self, x):
        return torch.stack(self.unroll(x), 1)
