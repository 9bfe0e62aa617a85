"""The report's plots: SVG, byte-stable, one colour a model throughout."""
from __future__ import annotations

import re
from pathlib import Path

from suite.report.tables import Board


def plt_():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def colour(model: str) -> str:
    """The same colour for a model in every plot (tab10, registry order)."""
    import matplotlib
    from matplotlib.colors import to_hex

    from suite.models import MODELS

    names = list(MODELS)
    i = names.index(model) if model in names else len(names) + sum(map(ord, model)) % 6
    return to_hex(matplotlib.colormaps["tab10"].colors[i % 10])


def save_svg(fig, path: Path):
    """SVG with fixed ids (svg.hashsalt is set by build) and no date, DOCTYPE or metadata: byte-stable."""
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt_().close(fig)
    clean_svg(path)


def clean_svg(path: Path):
    text = Path(path).read_text()
    text = re.sub(r"<!DOCTYPE[^>]*>\s*", "", text)
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)
    Path(path).write_text(text)


def plot_curves(board: Board, histories: dict, x_key: str, path: Path) -> bool:
    """Validation metric against epoch or elapsed seconds: a line a row (mean over seeds), band min-max."""
    plt = plt_()
    fig, ax = plt.subplots(figsize=(6.4, 4))
    drawn = False
    for row in board.rows:
        series = [histories[r.id] for r in row.runs.values() if histories.get(r.id, {}).get("value")]
        if not series:
            continue
        n = max(len(s["value"]) for s in series)
        xs, mean, lo, hi = [], [], [], []
        for i in range(n):
            at = [s for s in series if i < len(s["value"])]
            ys = [s["value"][i] for s in at]
            if x_key == "epoch":
                x = [s["epoch"][i] for s in at]
            else:
                x = [s["elapsed"][i] for s in at if i < len(s["elapsed"])]
            if not x:
                continue
            xs.append(sum(x) / len(x))
            mean.append(sum(ys) / len(ys))
            lo.append(min(ys))
            hi.append(max(ys))
        style = "--" if row.tuned else "-"
        ax.plot(xs, mean, style, marker="o", markersize=3, color=colour(row.model), label=row.label)
        if len(series) > 1:
            ax.fill_between(xs, lo, hi, color=colour(row.model), alpha=0.2)
        drawn = True
    if not drawn:
        plt.close(fig)
        return False
    name = "accuracy" if board.metric == "acc" else "MSE"
    ax.set(xlabel="epoch" if x_key == "epoch" else "wall-clock seconds since the start of training",
           ylabel=f"validation {name}", title=f"{board.setting.label}: validation {name}")
    if board.metric == "mse":
        ax.set_yscale("log")
    if x_key == "epoch":
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_svg(fig, path)
    return True


def plot_size(board: Board, path: Path) -> bool:
    """Test metric against parameter count, a point a row (mean, bars: std over seeds)."""
    plt = plt_()
    points = [(r, r.cells["n_params"], r.cells["test_metric"]) for r in board.rows]
    points = [(r, x, y) for r, x, y in points if x["mean"] is not None and y["mean"] is not None]
    if not points:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for row, x, y in points:
        ax.errorbar([x["mean"]], [y["mean"]], yerr=[y["std"] or 0], fmt="s" if row.tuned else "o", capsize=3,
                    color=colour(row.model), label=row.label)
    name = "accuracy" if board.metric == "acc" else "MSE"
    ax.set(xlabel="parameters", ylabel=f"test {name}", title=f"{board.setting.label}: test {name} against size")
    if board.metric == "mse":
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_svg(fig, path)
    return True


def plot_speed(rows: list[dict], path: Path):
    """Suite training samples/s, bars by model within each task shape (log scale)."""
    plt = plt_()
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(6.4, 1.6 * len(shapes)), 4))
    width = 0.8 / max(len(models), 1)
    for i, model in enumerate(models):
        xs = [j + i * width for j, s in enumerate(shapes) for r in rows if r["shape"] == s and r["model"] == model]
        ys = [r["suite"] for s in shapes for r in rows if r["shape"] == s and r["model"] == model]
        ax.bar(xs, ys, width, color=colour(model), label=model)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(shapes))], shapes)
    ax.set(yscale="log", ylabel="training samples/s (suite)", title="training speed by model and task")
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    fig.tight_layout()
    save_svg(fig, path)
