"""Which model wins a column of a leaderboard: only one that beats chance clearly and every other model beyond
seed noise. The statistics are scipy's: Student-t 95% intervals of each mean, Welch's t-test of the best against
each other model (one-sided), p-values adjusted for the several comparisons (Benjamini-Hochberg)."""
from __future__ import annotations

import dataclasses
import math
import statistics
import warnings

MIN_SEEDS = 3  # fewer and nothing is marked: two seeds cannot tell a difference from noise
ALPHA = 0.05
CLEAR_OF_CHANCE = 0.9  # the best's loss/chance must stay below this at the upper end of its 95% interval


@dataclasses.dataclass
class Verdict:
    winner: object | None  # the key of the winning row, if there is one
    top: list  # the keys that cannot be told from the best (the winner alone, or a tie)
    reason: str  # why there is no winner ("" when there is)


def interval(values: list[float]) -> tuple[float, float] | None:
    """The 95% confidence interval of the mean (Student's t), or None for fewer than 2 values."""
    from scipy import stats

    if len(values) < 2:
        return None
    mean, sem = statistics.mean(values), stats.sem(values)
    if sem == 0 or not math.isfinite(sem):
        return mean, mean
    low, high = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=sem)
    return float(low), float(high)


def decide(rows: dict, higher_is_better: bool, vs_chance: dict | None = None) -> Verdict:
    """rows: key -> the values over seeds; vs_chance: key -> test loss / chance loss over seeds (None: no check)."""
    from scipy import stats

    rows = {k: [v for v in vals if math.isfinite(v)] for k, vals in rows.items()}
    rows = {k: v for k, v in rows.items() if v}
    if len(rows) < 2:
        return Verdict(None, [], "one model: nothing to compare")
    thin = [k for k, v in rows.items() if len(v) < MIN_SEEDS]
    if thin:
        return Verdict(None, [], f"fewer than {MIN_SEEDS} seeds: no winner is marked")
    best = (max if higher_is_better else min)(rows, key=lambda k: statistics.mean(rows[k]))
    if vs_chance is not None:
        ratio = interval(vs_chance.get(best, []))
        if ratio is None or not ratio[1] < CLEAR_OF_CHANCE:
            return Verdict(None, [], "no model is clearly better than chance")
    others = [k for k in rows if k != best]
    side = "greater" if higher_is_better else "less"
    with warnings.catch_warnings():  # near-identical seeds: scipy warns of precision loss, and p says no difference
        warnings.simplefilter("ignore", RuntimeWarning)
        p = [stats.ttest_ind(rows[best], rows[k], equal_var=False, alternative=side).pvalue for k in others]
    p = [1.0 if not math.isfinite(x) else x for x in p]  # equal constant values: no evidence of a difference
    adjusted = stats.false_discovery_control(p) if len(p) > 1 else p
    tied = [k for k, q in zip(others, adjusted, strict=True) if q >= ALPHA]
    if tied:
        return Verdict(None, [best, *tied], "the best cannot be told from the others within seed noise")
    return Verdict(best, [best], "")
