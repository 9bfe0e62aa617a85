"""The results table printed at the end of a run or benchmark (mean ± std over seeds), and its scoring."""
from __future__ import annotations

import math
import statistics
from collections import defaultdict


def finite(values) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def mean_std(values) -> tuple[float, float | None, int] | None:
    """(mean, sample std or None for one value, n) of the finite values; None when there are none."""
    values = finite(values)
    if not values:
        return None
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None, len(values)


def _stat(values: list[float], fmt: str) -> str:
    found = mean_std(values)
    if found is None:
        return "-"
    mean, std, _ = found
    return format(mean, fmt) if std is None else f"{format(mean, fmt)}±{format(std, fmt)}"


class Group:
    """The runs of one table row, as (status, metrics) pairs: finished ones scored, every one counted."""

    def __init__(self, runs: list[tuple[str, dict]]):
        self.n_runs = len(runs)
        self.ok = [m for status, m in runs if status != "FAILED" and "test_loss" in m]

    @property
    def metric(self) -> str | None:
        """acc (classification) or mse (regression); None when no run finished."""
        if not self.ok:
            return None
        return "acc" if "test_acc" in self.ok[0] else "mse"

    def values(self, key: str) -> list[float]:
        """The finite values of a metric over the finished runs; `test_metric` is test_acc or test_mse."""
        if key == "test_metric":
            key = f"test_{self.metric}"
        if key == "test_vs_chance":
            return finite(m.get("test_vs_chance", m["test_loss"] / m["chance_loss"] if m.get("chance_loss") else None)
                          for m in self.ok)
        return finite(m.get(key) for m in self.ok)

    @property
    def solved(self) -> tuple[int, int] | None:
        """(runs solved, runs scored) when the task has a solve rule."""
        if not self.ok or not all("solved" in m for m in self.ok):
            return None
        return sum(m["solved"] == 1 for m in self.ok), len(self.ok)


def table(outcomes) -> str:
    """One row per (task, T, model): the test metric, loss against chance, size and speed, and which model wins
    a setting by suite/compare.py's rule (best: beyond seed noise and chance; ≈: tied with the best)."""
    from suite.compare import decide

    groups = defaultdict(list)
    for o in outcomes:
        groups[(o.cell.task, o.cell.seq_len, o.cell.model_label)].append((o.status, o.metrics))
    verdicts, notes = {}, []
    for setting in dict.fromkeys(k[:2] for k in groups):
        mine = {k: Group(r) for k, r in groups.items() if k[:2] == setting}
        scored = {k: g for k, g in mine.items() if g.ok}
        if len(scored) > 1:
            verdict = decide({k: g.values("test_metric") for k, g in scored.items()},
                             next(iter(scored.values())).metric == "acc",
                             {k: g.values("test_vs_chance") for k, g in scored.items()})
            verdicts |= {k: "best" if k == verdict.winner else "≈best" if k in verdict.top else "" for k in scored}
            if verdict.reason:
                notes.append(f"{setting[0]} T={setting[1]}: no winner ({verdict.reason})")
    header = ("task", "T", "model", "seeds", "test metric", "test_loss", "loss/chance", "solved", "params", "samples/s",
              "epoch s", "verdict")
    rows = []
    for (task, T, model), runs in groups.items():
        g = Group(runs)
        spec = ".3f" if g.metric == "acc" else ".4f"
        metric = f"{g.metric} {_stat(g.values('test_metric'), spec)}" if g.ok else "FAILED"
        solved = g.solved
        rows.append((task, str(T), model, f"{len(g.ok)}/{g.n_runs}", metric,
                     _stat(g.values("test_loss"), ".4f"), _stat(g.values("test_vs_chance"), ".3f"),
                     f"{solved[0]}/{solved[1]}" if solved else "-",
                     _stat(g.values("n_params"), ".0f"), _stat(g.values("train_samples_per_s"), ".0f"),
                     _stat(g.values("epoch_time_s"), ".1f"), verdicts.get((task, T, model), "") or "-"))
    return "\n".join([aligned(header, rows, left={0, 2, 4, 11}), *notes])


def aligned(header, rows, left: set[int]) -> str:
    """A fixed-width text table: the columns in `left` left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]

    def line(r):
        cells = enumerate(zip(r, widths, strict=True))
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in cells)

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])
