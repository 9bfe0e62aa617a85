"""The results table printed at the end of a run or benchmark (mean ± std over seeds)."""
from __future__ import annotations

import math
import statistics
from collections import defaultdict


def _stat(values: list[float], fmt: str) -> str:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "-"
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(statistics.mean(values), fmt)}±{format(statistics.stdev(values), fmt)}"


def table(outcomes) -> str:
    """One row per (task, T, model): the test metric, loss against chance, size and speed."""
    groups = defaultdict(list)
    for o in outcomes:
        groups[(o.cell.task, o.cell.seq_len, o.cell.model)].append(o)
    header = ("task", "T", "model", "seeds", "test metric", "test_loss", "loss/chance", "solved", "params", "samples/s",
              "epoch s")
    rows = []
    for (task, T, model), runs in groups.items():
        ok = [o.metrics for o in runs if o.status != "FAILED" and "test_loss" in o.metrics]
        acc = "test_acc" in (ok[0] if ok else {})
        metric = (f"acc {_stat([m['test_acc'] for m in ok], '.3f')}" if acc
                  else f"mse {_stat([m.get('test_mse') for m in ok], '.4f')}") if ok else "FAILED"
        rows.append((task, str(T), model, f"{len(ok)}/{len(runs)}", metric,
                     _stat([m["test_loss"] for m in ok], ".4f"),
                     _stat([m["test_loss"] / m["chance_loss"] for m in ok if m.get("chance_loss")], ".3f"),
                     f"{sum(m['solved'] == 1 for m in ok)}/{len(ok)}" if ok and all("solved" in m for m in ok) else "-",
                     _stat([m.get("n_params") for m in ok], ".0f"),
                     _stat([m.get("train_samples_per_s") for m in ok], ".0f"),
                     _stat([m.get("epoch_time_s") for m in ok], ".1f")))
    return aligned(header, rows, left={0, 2, 4})


def aligned(header, rows, left: set[int]) -> str:
    """A fixed-width text table: the columns in `left` left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])
