"""Vanilla (tanh) RNN, LSTM and GRU on PyTorch's fused kernels (cuDNN on GPU, oneDNN on CPU)."""
from torch import nn

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class FusedRNN(nn.Module):
    """A stack of recurrent layers run by one fused kernel call: no Python loop over time."""

    def __init__(self, kind: str, input_size: int, cfg):
        super().__init__()
        self.rnn = CELLS[kind](input_size, cfg.hidden_size, cfg.num_layers, batch_first=True,
                               dropout=cfg.dropout if cfg.num_layers > 1 else 0.0)

    def forward(self, x, last_only: bool = False):  # (B, T, input) -> (B, T, hidden)
        return self.rnn(x)[0]
