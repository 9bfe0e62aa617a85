"""S seeds of one fused LSTM setting trained as one block-diagonal LSTM: one cuDNN call a step for all of them
(the GPU check's prototype of a way to fill a GPU, suite/studies/fill.py)."""
from __future__ import annotations

import torch
from torch import nn


class BlockLSTM(nn.Module):
    """S networks of one fused LSTM setting as one: an nn.LSTM S times wider whose weights are block-diagonal
    (seed s's gates read only seed s's inputs and state), and S heads applied together. Inputs (S, B, T, I),
    outputs (S, B, [T,] O). The cross-seed weights start at zero and stay there: their gradients are masked, so
    Adam never moves them, and each seed's gradient is the one it has alone (tests/test_gpu_check.py)."""

    def __init__(self, nets: list[nn.Module]):
        super().__init__()
        rnns = [n.backbone.rnn for n in nets]
        one, s = rnns[0], len(nets)
        self.seeds, self.hidden, self.every_step = s, one.hidden_size, nets[0].every_step
        self.shapes = {name: p.shape for name, p in one.named_parameters()}  # one seed's, by name
        self.rnn = nn.LSTM(s * one.input_size, s * one.hidden_size, one.num_layers, batch_first=True,
                           dropout=one.dropout).to(one.weight_ih_l0.device)
        with torch.no_grad():
            for name, big in self.rnn.named_parameters():
                big.zero_()
                for i, r in enumerate(rnns):
                    block = self.block(big, i, name)
                    block.copy_(getattr(r, name).view(block.shape))
                if not name.startswith("bias"):
                    mask = torch.zeros_like(big)
                    for i in range(s):
                        self.block(mask, i, name).fill_(1)
                    big.register_hook(lambda g, m=mask: g * m)
        self.head_w = nn.Parameter(torch.stack([n.head.weight.detach() for n in nets]))  # (S, O, H)
        self.head_b = nn.Parameter(torch.stack([n.head.bias.detach() for n in nets]))  # (S, O)

    def block(self, big: torch.Tensor, s: int, name: str) -> torch.Tensor:
        """Seed s's block (a view) of one of the wide LSTM's tensors: rows gate by gate, each gate's rows seed by
        seed; a weight's columns seed by seed."""
        gates, h = big.shape[0] // (self.seeds * self.hidden), self.hidden
        if name.startswith("bias"):
            return big.view(gates, self.seeds, h)[:, s]
        return big.view(gates, self.seeds, h, self.seeds, self.shapes[name][1])[:, s, :, s, :]

    def forward(self, x):  # (S, B, T, I) -> (S, B, [T,] O)
        s, b, t, _ = x.shape
        h = self.rnn(x.permute(1, 2, 0, 3).reshape(b, t, -1))[0].view(b, t, s, self.hidden)
        if not self.every_step:
            return torch.einsum("bsh,soh->sbo", h[:, -1], self.head_w) + self.head_b[:, None]
        return torch.einsum("btsh,soh->sbto", h, self.head_w) + self.head_b[:, None, None]

    def seed_grads(self, s: int) -> dict:
        """Seed s's gradients under the names of its own Network's parameters."""
        out = {f"backbone.rnn.{name}": self.block(p.grad, s, name).reshape(self.shapes[name])
               for name, p in self.rnn.named_parameters()}
        return out | {"head.weight": self.head_w.grad[s], "head.bias": self.head_b.grad[s]}

    def clip_each(self, clip: float):
        """Clip each seed's gradient by its own norm, as it is clipped alone (the cross-seed blocks are zero)."""
        rows = [p.grad.view(p.shape[0] // (self.seeds * self.hidden), self.seeds, -1)  # the seed is dim 1
                for p in self.rnn.parameters()]
        square = (torch.stack([g.pow(2).sum((0, 2)) for g in rows]).sum(0)
                  + self.head_w.grad.pow(2).sum((1, 2)) + self.head_b.grad.pow(2).sum(1))
        scale = (clip / (square.sqrt() + 1e-6)).clamp(max=1.0)  # (S,)
        for g in rows:
            g.mul_(scale.view(1, -1, 1))
        self.head_w.grad.mul_(scale.view(-1, 1, 1))
        self.head_b.grad.mul_(scale.view(-1, 1))
