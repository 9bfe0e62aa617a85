"""The report's plots: SVG, byte-stable, one colour a model throughout."""
from __future__ import annotations

import re
from pathlib import Path

from suite.scoring import Board, fmt

FIGSIZE = (5.6, 3.6)  # inches: on a phone the SVG shrinks less than a wider one, so its text stays readable
FONT = {"font.size": 11, "axes.titlesize": 11, "legend.fontsize": 9}


def plt_():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def colour(model: str) -> str:
    """The same colour for a model in every plot (registry order: tab10's ten, then Dark2's eight)."""
    import matplotlib
    from matplotlib.colors import to_hex

    from suite.models import MODELS

    names = list(MODELS)
    palette = [*matplotlib.colormaps["tab10"].colors, *matplotlib.colormaps["Dark2"].colors]
    i = names.index(model) if model in names else len(names) + sum(map(ord, model)) % 6
    return to_hex(palette[i % len(palette)])


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


def line_style(board: Board, row) -> str:
    """A model keeps its colour; its variants (tuned, other init schemes) take the next line style."""
    variants = [r for r in board.rows if r.model == row.model]
    return ("-", "--", ":", "-.")[variants.index(row) % 4]


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")  # a model's own marker too: lines that coincide stay told apart


def marker(model: str) -> str:
    from suite.models import MODELS

    names = list(MODELS)
    return MARKERS[(names.index(model) if model in names else sum(map(ord, model))) % len(MARKERS)]


def plain_log(axis):
    """A log axis labelled in plain numbers (0.02, 0.05, 0.1), not 2×10⁻²."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def chance_line(ax, value: float | None, what: str = "chance"):
    if value is not None:  # its gid marks it in the SVG, where the tests look for it
        ax.axhline(value, color="0.35", linestyle="--", linewidth=1, label=what, zorder=1).set_gid("chance-line")


def legend(ax, size: str = "small"):
    """A board's legend: one column, or three in a smaller font where it names many rows (a store with runs at
    both recipes, or tuned ones, doubles them), so that it still fits the axes."""
    many = len(ax.get_legend_handles_labels()[1]) > 12
    ax.legend(fontsize="xx-small" if many else size, ncol=3 if many else 1)


def with_titles(path: Path, titles: dict[str, str]):
    """SVG <title> tooltips on the groups whose gid is a key (no JavaScript: the browser shows them on hover)."""
    from html import escape

    text = Path(path).read_text()
    for gid, title in titles.items():
        text = text.replace(f'<g id="{gid}">', f'<g id="{gid}"><title>{escape(title)}</title>', 1)
    Path(path).write_text(text)


def _series(histories: dict, runs, x_key: str, y_key: str):
    """Each run's (xs, ys) of a metric against epoch or elapsed seconds."""
    out = []
    for run in runs:
        h = histories.get(run.id, {})
        ys = h.get(y_key) or []
        xs = h["epoch"][: len(ys)] if x_key == "epoch" else h.get("elapsed", [])[: len(ys)]
        if ys and xs:
            out.append((xs[: len(ys)], ys[: len(xs)]))
    return out


def plot_curves(board: Board, histories: dict, x_key: str, path: Path, chance: float | None = None) -> bool:
    """Validation metric against epoch or elapsed seconds: a thin line a seed, the mean over seeds on top, a band
    from min to max, and the chance line."""
    plt = plt_()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    drawn = False
    for row in board.rows:
        series = _series(histories, row.runs.values(), x_key, "value")
        if not series:
            continue
        c, style = colour(row.model), line_style(board, row)
        for xs, ys in series:
            ax.plot(xs, ys, style, color=c, linewidth=0.8, alpha=0.35)
        n = max(len(ys) for _, ys in series)
        at = [[s for s in series if i < len(s[1])] for i in range(n)]
        xs = [sum(s[0][i] for s in a) / len(a) for i, a in enumerate(at)]
        ys = [[s[1][i] for s in a] for i, a in enumerate(at)]
        ax.plot(xs, [sum(v) / len(v) for v in ys], style, marker=marker(row.model), markersize=4, color=c,
                label=row.label)
        if len(series) > 1:
            ax.fill_between(xs, [min(v) for v in ys], [max(v) for v in ys], color=c, alpha=0.15)
        drawn = True
    if not drawn:
        plt.close(fig)
        return False
    name = "accuracy" if board.metric == "acc" else "MSE"
    chance_line(ax, chance)
    ax.set(xlabel="epoch" if x_key == "epoch" else "wall-clock seconds since the start of training",
           ylabel=f"validation {name}", title=f"{board.setting.label}: validation {name}")
    if board.metric == "mse":
        ax.set_yscale("log")
        plain_log(ax.yaxis)
    if x_key == "epoch":
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    legend(ax)
    fig.tight_layout()
    save_svg(fig, path)
    return True


def plot_losses(board: Board, histories: dict, path: Path, chance: float | None = None) -> bool:
    """Train (dashed) and validation (solid) loss against epoch, mean over seeds, with the chance loss."""
    plt = plt_()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    drawn = False
    for row in board.rows:
        for key, style, what in (("train_loss", "--", "train"), ("val_loss", "-", "val")):
            series = _series(histories, row.runs.values(), "epoch", key)
            if not series:
                continue
            n = max(len(ys) for _, ys in series)
            means = [[s[1][i] for s in series if i < len(s[1])] for i in range(n)]
            ax.plot(range(1, n + 1), [sum(v) / len(v) for v in means], style, marker=marker(row.model), markersize=3,
                    color=colour(row.model), label=f"{row.label} {what}")
            drawn = True
    if not drawn:
        plt.close(fig)
        return False
    chance_line(ax, chance, "chance loss")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel="loss (mean over seeds)", title=f"{board.setting.label}: train and validation loss")
    ax.set_yscale("log")
    plain_log(ax.yaxis)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", ncol=2)
    fig.tight_layout()
    save_svg(fig, path)
    return True


def plot_size(board: Board, path: Path, chance: float | None = None) -> bool:
    """Test metric against parameter count, a point per row (mean, bars: std over seeds); hover shows the numbers.
    Only drawn when the sizes differ: models matched to one budget would stack on one vertical line."""
    plt = plt_()
    points = [(r, r.stats["n_params"], r.stats["test_metric"]) for r in board.rows]
    points = [(r, x, y) for r, x, y in points if x.mean is not None and y.mean is not None]
    if len(points) < 2 or max(x.mean for _, x, _ in points) < 1.05 * min(x.mean for _, x, _ in points):
        return False
    fig, ax = plt.subplots(figsize=FIGSIZE)
    titles = {}
    for i, (row, x, y) in enumerate(points):
        bars = ax.errorbar([x.mean], [y.mean], yerr=[y.std or 0], fmt=marker(row.model), capsize=3,
                           color=colour(row.model), label=row.label, mfc="none" if row.tuned else None)
        bars[0].set_gid(f"point-{i}")
        titles[f"point-{i}"] = (f"{row.label}: {y.text(board.metric)} with {fmt(x.mean, 'count')} parameters "
                                f"({len(row.runs)} seeds)")
    name = "accuracy" if board.metric == "acc" else "MSE"
    chance_line(ax, chance)
    ax.set(xlabel="parameters", ylabel=f"test {name}", title=f"{board.setting.label}: test {name} against size")
    if board.metric == "mse":
        ax.set_yscale("log")
        plain_log(ax.yaxis)
    ax.grid(alpha=0.3)
    legend(ax)
    fig.tight_layout()
    save_svg(fig, path)
    with_titles(path, titles)
    return True


def plot_speed(rows: list[dict], path: Path):
    """Suite training samples/s, bars by model within each task shape (log scale)."""
    plt = plt_()
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(FIGSIZE[0], 1.6 * len(shapes)), FIGSIZE[1]))
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
