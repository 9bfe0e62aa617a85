"""What a trained network is measured for beside its metrics: weights, attention maps, gradient flow.

Each diagnostic asks the backbone what it can do (suite/models/base.py), never which model it is.

Gradient flow is ‖∂L/∂h_t‖ at every step t for a loss at the end of the sequence. Fused kernels hide
their inner states from autograd, so a backbone exposes them through `unroll` (the fused models step
nn.*Cell modules holding the very same weights; tests check the outputs agree) and maps them to its
outputs with `readout` (attn_rnn's attention runs there, so its direct paths to early steps show up).
"""
from __future__ import annotations

import copy
import csv
import io
import math
import tempfile


def record_attention(client, run_id: str, backbone, test, title: str, task=None, n: int = 3, window: int = 96):
    """attention.npy (n test sequences, T x T) and attention.png, for a backbone with attention_weights: a colour
    bar, the task's key steps marked (dotted), and for long sequences the last `window` outputs over every step."""
    if not hasattr(backbone, "attention_weights"):
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x, _ = next(iter(test))
    maps = backbone.attention_weights(x[:n]).float().cpu().numpy()
    keys = task.key_steps(x[:n]) if task is not None else [[] for _ in maps]
    T = maps.shape[-1]
    first = max(0, T - window)  # the last outputs: the ones a last-step or recall task is scored on
    fig, axes = plt.subplots(1, len(maps), figsize=(3.6 * len(maps), 3.4), squeeze=False)
    for i, (ax, m, marks) in enumerate(zip(axes[0], maps, keys, strict=True)):
        image = ax.imshow(m[first:], cmap="viridis", aspect="auto", interpolation="nearest",
                          extent=(-0.5, T - 0.5, T - 0.5, first - 0.5))
        for step in marks:
            ax.axvline(step, color="white", linestyle=":", linewidth=0.8)
        ax.set(title=f"sequence {i}", xlabel="attended step", ylabel="output step" if i == 0 else None)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="weight" if i == len(maps) - 1 else None)
    shown = f", outputs {first}–{T - 1}" if first else ""
    fig.suptitle(f"attention: {title}{shown}; dotted: the steps to remember", fontsize=9)
    fig.tight_layout()
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/attention.npy", maps)
        fig.savefig(f"{tmp}/attention.png", dpi=110)
        client.log_artifact(run_id, f"{tmp}/attention.npy")
        client.log_artifact(run_id, f"{tmp}/attention.png")
    plt.close(fig)


def record_gradflow(client, run_id: str, module, initial: dict, task, test, title: str) -> dict:
    """‖∂L/∂h_t‖ at initialisation and after training on a test batch: CSV, plot and decay metrics.

    A backbone that cannot expose its states is skipped, with the reason as the run's `gradflow_skipped` tag.
    """
    reason = unmeasurable(module.net.backbone)
    if reason:
        client.set_tag(run_id, "gradflow_skipped", reason)
        return {}
    x, y = next(iter(test))
    x, y = x[:256], y[:256]
    fresh = copy.deepcopy(module.net)
    fresh.load_state_dict(initial)
    curves = {"init": hidden_grad_norms(fresh, task, x, y),
              "trained": hidden_grad_norms(module.net, task, x, y)}
    client.log_text(run_id, to_csv(curves), "gradflow.csv")
    with tempfile.TemporaryDirectory() as tmp:
        plot_gradflow(curves, f"gradient flow: {title}", f"{tmp}/gradflow.png")
        client.log_artifact(run_id, f"{tmp}/gradflow.png")
    return {"grad_decay_per_step_init": decay_per_step(curves["init"]),
            "grad_decay_per_step": decay_per_step(curves["trained"])}


def unmeasurable(backbone) -> str | None:
    """Why gradient flow cannot be measured on this backbone, or None when it can."""
    if not hasattr(backbone, "unroll"):
        return f"{type(backbone).__name__} does not expose its states (no unroll(x))"
    return None


def hidden_grad_norms(net, task, x, y) -> list[float]:
    """Mean over the batch of ‖∂L/∂h_t‖ for t = 1..T, L the loss at the last step."""
    import torch

    backbone = net.backbone
    was_training = net.training
    net.eval()  # no dropout: the measurement is of the function, not of a random mask
    states = backbone.unroll(x)
    for state in states:
        state.retain_grad()  # h_t is used by step t+1 and by the output: its .grad gets both
    h = torch.stack(states, 1)
    out = net.head(backbone.readout(h)[:, -1] if hasattr(backbone, "readout") else h[:, -1])
    task.outputs.last_step_loss(out, y).backward()
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


def plot_gradflow(curves: dict[str, list[float]], title: str, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    for name, norms in curves.items():
        T = len(norms)
        ax.plot([T - 1 - t for t in range(T)], norms, "--" if name.endswith("init") else "-", label=name)
    ax.set(yscale="log", xlabel="steps from the loss", ylabel="‖∂L/∂h_t‖ (batch mean)", title=title)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
