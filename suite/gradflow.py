"""Gradient flow: ‖∂L/∂h_t‖ at every step t for a loss at the end of the sequence, per architecture.

The fused kernels do not expose their inner states to autograd, so the model's recurrence is unrolled
with nn.*Cell modules holding the very same weights (tests check the outputs agree); attn_rnn's
attention then runs on those states, so its direct paths to early steps show up as they should.
"""
from __future__ import annotations

import csv
import io
import math

import torch
import torch.nn.functional as F

from suite.models.attn_rnn import AttnRNN
from suite.models.fused import FusedRNN
from suite.speed import CellLoop


def _cell_copy(fused: FusedRNN) -> CellLoop:
    rnn = fused.rnn
    kind = {"RNN_TANH": "rnn", "LSTM": "lstm", "GRU": "gru"}[rnn.mode]
    loop = CellLoop(kind, rnn.input_size, rnn).to(rnn.weight_ih_l0.device)  # rnn has hidden_size/num_layers
    for i, cell in enumerate(loop.cells):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).data.copy_(getattr(rnn, f"{name}_l{i}").data)
    return loop


def hidden_grad_norms(net, task, x, y) -> list[float]:
    """Mean over the batch of ‖∂L/∂h_t‖ for t = 1..T, L the loss at the last step."""
    backbone = net.backbone
    fused = backbone.rnn if isinstance(backbone, AttnRNN) else backbone
    was_training = net.training
    net.eval()  # no dropout: the measurement is of the function, not of a random mask
    states = _cell_copy(fused).unroll(x)
    for state in states:
        state.retain_grad()  # h_t is used by step t+1 and by the output: its .grad gets both
    h = torch.stack(states, 1)
    if isinstance(backbone, AttnRNN):
        h = backbone.attend(h)
    out = net.head(h[:, -1])
    if task.output_kind == "regress_last":
        loss = F.mse_loss(out, y)
    else:
        loss = F.cross_entropy(out, y[:, -1] if task.output_kind == "class_every" else y)
    loss.backward()
    net.train(was_training)
    return [float(s.grad.norm(dim=-1).mean()) for s in states]


def decay_per_step(norms: list[float]) -> float:
    """Slope of log‖∂L/∂h_t‖ against the distance from the loss (per step; < 0: gradients vanish)."""
    points = [(len(norms) - 1 - t, math.log(n)) for t, n in enumerate(norms) if n > 0]
    if len(points) < 2:
        return float("nan")
    mx = sum(d for d, _ in points) / len(points)
    my = sum(v for _, v in points) / len(points)
    var = sum((d - mx) ** 2 for d, _ in points)
    return sum((d - mx) * (v - my) for d, v in points) / var


def to_csv(curves: dict[str, list[float]]) -> str:
    """t, distance from the loss, then one column a curve (e.g. init, trained)."""
    names = list(curves)
    T = len(curves[names[0]])
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["t", "distance", *(f"grad_norm_{n}" for n in names)])
    for t in range(T):
        writer.writerow([t, T - 1 - t, *(f"{curves[n][t]:.6g}" for n in names)])
    return out.getvalue()


def plot(curves: dict[str, list[float]], title: str, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, norms in curves.items():
        T = len(norms)
        ax.plot([T - 1 - t for t in range(T)], norms, label=name)
    ax.set(yscale="log", xlabel="steps from the loss", ylabel="‖∂L/∂h_t‖ (batch mean)", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
