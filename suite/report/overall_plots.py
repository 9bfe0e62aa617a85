"""The overall section's figures: each model's score intervals with every seed, the performance profile, the
quality-against-cost frontier, and the cost against sequence length; SVG, byte-stable, a model's colour throughout."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from suite.report.plots import FIGSIZE, colour, marker, plain_log, plt_, save_svg, with_titles


def plot_scores(o, path: Path) -> bool:
    """Per model (best first, top to bottom): the IQM and its 95% interval (thick), the mean and its interval
    (thin, hollow marker), and every run's score as a dot, so seeds that fall apart show as two clusters."""
    if not o.contenders:
        return False
    plt = plt_()
    fig, ax = plt.subplots(figsize=(FIGSIZE[0], 0.9 + 0.45 * len(o.contenders)))
    rng = np.random.RandomState(0)  # the dots' vertical jitter, fixed: the same store draws the same picture
    titles = {}
    for i, c in enumerate(reversed(o.contenders)):
        col = colour(c.model)
        seeds = c.seeds
        ax.scatter(seeds, i + 0.22 + rng.uniform(-0.06, 0.06, len(seeds)), s=9, color=col, alpha=0.45, linewidths=0)
        if c.iqm_ci:
            ax.plot(c.iqm_ci, [i, i], color=col, linewidth=4, solid_capstyle="butt")
            ax.plot(c.mean_ci, [i - 0.22] * 2, color=col, linewidth=1.2)
        point = ax.plot([c.iqm], [i], marker(c.model), color=col, markersize=7)[0]
        ax.plot([c.mean], [i - 0.22], marker(c.model), color=col, markersize=6, mfc="white")
        point.set_gid(f"score-{i}")
        titles[f"score-{i}"] = f"{c.label}: IQM {c.iqm:.3f}, mean {c.mean:.3f} over {len(seeds)} runs"
    ax.axvline(0, color="0.35", linestyle="--", linewidth=1).set_gid("chance-line")
    ax.set_yticks(range(len(o.contenders)), [c.label for c in reversed(o.contenders)])
    ax.set(xlim=(-0.03, 1.03), xlabel="score (0: chance, 1: perfect test loss)",
           title="score: IQM (filled), mean (hollow), each run (dots)")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    save_svg(fig, path)
    with_titles(path, titles)
    return True


def plot_profile(o, taus, path: Path) -> bool:
    """The share of each model's runs scoring above tau, against tau, with its 95% band."""
    if not o.profile:
        return False
    plt = plt_()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for c in o.contenders:
        p = o.profile[c.label]
        ax.plot(taus, p["share"], marker=marker(c.model), markersize=3, color=colour(c.model), label=c.label)
        if o.intervals:
            ax.fill_between(taus, p["low"], p["high"], color=colour(c.model), alpha=0.15)
    ax.axvline(0, color="0.35", linestyle="--", linewidth=1, label="chance").set_gid("chance-line")
    ax.set(xlim=(0, 1), ylim=(-0.02, 1.02), xlabel="score threshold τ", ylabel="share of runs with score > τ",
           title=f"performance profile over {o.population}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    save_svg(fig, path)
    return True


def plot_frontier(points: dict[str, tuple[float, float, str]], front: set[str], title: str, path: Path) -> bool:
    """Score against training seconds (log scale), one point per model: the frontier in full colour, a model some
    other beats on both faint."""
    points = {k: v for k, v in points.items() if v[1] and v[1] > 0}
    if len(points) < 2:
        return False
    plt = plt_()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    titles = {}
    for i, (label, (score, seconds, model)) in enumerate(sorted(points.items())):
        on = label in front
        dot = ax.plot([seconds], [score], marker(model), color=colour(model), alpha=1.0 if on else 0.3, markersize=8,
                      label=label + ("" if on else " (dominated)"))[0]
        dot.set_gid(f"cost-{i}")
        titles[f"cost-{i}"] = f"{label}: score {score:.3f} for {seconds:.1f} training seconds"
    ax.axhline(0, color="0.35", linestyle="--", linewidth=1, label="chance").set_gid("chance-line")
    ax.set_xscale("log")
    plain_log(ax.xaxis)
    seconds = [v[1] for v in points.values()]
    ax.set_xlim(min(seconds) / 2, max(seconds) * 2)  # a factor of 4 at least: two labelled ticks, no dot on an edge
    ax.set(ylim=(-0.03, 1.03), xlabel="training seconds (log scale)", ylabel="score (mean over seeds)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    save_svg(fig, path)
    with_titles(path, titles)
    return True


def plot_scaling(rows: list[dict], path: Path) -> bool:
    """Seconds per training step against T, log-log, a line per model with its fitted slope in the legend."""
    if not rows:
        return False
    plt = plt_()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for r in rows:
        slope = "" if r["slope"] is None else f" (slope {r['slope']:.2f})"
        ax.plot(r["lengths"], [v * 1000 for v in r["step_s"]], marker=marker(r["model"]), color=colour(r["model"]),
                label=r["model"] + slope)
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log(ax.xaxis)
    plain_log(ax.yaxis)
    ax.set(xlabel="sequence length T (log scale)", ylabel="ms per training step (log scale)",
           title=f"training step time against length ({rows[0]['task']}, batch {rows[0]['batch']})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    save_svg(fig, path)
    return True


def plot_lr(rows: list[dict], title: str, path: Path) -> bool:
    """Validation score against the learning rate (log axis), a line a model through every point at the search's
    first rung, the points that went on joined again at each later rung (dashed), the chosen one ringed."""
    import json

    found = [r["found"] for r in rows if any("train.lr" in json.loads(p) for p in r["found"].points)]
    if not found:
        return False
    plt = plt_()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    titles, lrs = {}, set()
    for i, f in enumerate(found):
        col, mark = colour(f.model), marker(f.model)
        lr = {p: json.loads(p)["train.lr"] for p in f.points}
        lrs |= set(lr.values())
        rungs = max(len(s) for s in f.scores.values())
        for rung in range(rungs):
            mine = sorted((lr[p], s[rung]) for p, s in f.scores.items() if len(s) > rung)
            ax.plot(*zip(*mine, strict=True), marker=mark, color=col, linestyle="-" if rung == 0 else "--",
                    markersize=4 if rung == 0 else 6, alpha=1.0 if rung == rungs - 1 else 0.55,
                    label=f.model if rung == 0 else None)
        if f.chosen in f.scores:
            dot = ax.plot([lr[f.chosen]], [f.scores[f.chosen][-1]], "o", mfc="none", color=col, markersize=13,
                          markeredgewidth=1.6)[0]
            dot.set_gid(f"chosen-{i}")
            titles[f"chosen-{i}"] = (f"{f.model}: chosen lr {lr[f.chosen]:g}, validation score "
                                     f"{f.scores[f.chosen][-1]:.3f}")
    ax.axhline(0, color="0.35", linestyle="--", linewidth=1, label="chance").set_gid("chance-line")
    ax.set_xscale("log")
    plain_log(ax.xaxis)
    ax.set_xlim(min(lrs) / 1.6, max(lrs) * 1.6)
    ax.set(ylim=(-0.03, 1.03), xlabel="learning rate (log scale)", ylabel="validation score (0: chance)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", ncol=2 if len(found) > 6 else 1)
    fig.tight_layout()
    save_svg(fig, path)
    with_titles(path, titles)
    return True
