"""A recurrence stepped in Python with nn.RNNCell/LSTMCell/GRUCell: states exposed to autograd, and the speed
baseline against the fused kernels."""
from __future__ import annotations

import torch
from torch import nn

STEPS = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}  # one step of each family


class SteppedRNN(nn.Module):
    """The same recurrence as nn.RNN/LSTM/GRU, one nn.*Cell call per step and layer."""

    def __init__(self, family: str, input_size: int, cfg, nonlinearity: str = "tanh"):
        super().__init__()
        self.family = family
        extra = {"nonlinearity": nonlinearity} if family == "rnn" else {}
        self.layers = nn.ModuleList(STEPS[family](input_size if i == 0 else cfg.hidden_size, cfg.hidden_size, **extra)
                                    for i in range(cfg.num_layers))

    def unroll(self, x) -> list:
        """The top layer's states h_1..h_T, one tensor per step."""
        for layer in self.layers:
            h = x.new_zeros(x.shape[0], layer.hidden_size)
            state = (h, h) if self.family == "lstm" else h
            outputs = []
            for t in range(x.shape[1]):
                state = layer(x[:, t], state)
                outputs.append(state[0] if self.family == "lstm" else state)
            x = torch.stack(outputs, 1)
        return outputs

    def forward(self, x):
        return torch.stack(self.unroll(x), 1)


class Unrolled(nn.Module):
    """A backbone's recurrence stepped in Python through its own unroll/readout: the stepped baseline of a model
    whose forward is a parallel scan, a convolution or a chunked form (the LRU, the selective state spaces)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, x, last_only: bool = False):  # every step is computed either way
        return self.backbone.readout(torch.stack(self.backbone.unroll(x), 1))


def can_step(model: type) -> bool:
    """Whether a model class can run its recurrence stepped in Python (stepped(), or unroll and readout)."""
    return hasattr(model, "stepped") or (hasattr(model, "unroll") and hasattr(model, "readout"))


def stepped_form(backbone: nn.Module) -> nn.Module:
    """The same function as backbone, stepped in Python, holding the same weights."""
    return backbone.stepped() if hasattr(backbone, "stepped") else Unrolled(backbone)
