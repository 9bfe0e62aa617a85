"""Verdicts across seeds and settings, from the libraries that define them, behind one thin adapter each.

rliable (Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice"; archived upstream, pinned):
interquartile mean and mean with stratified-bootstrap 95% intervals (runs resampled within each setting),
performance profiles and the probability of improvement. autorank (Demšar 2006's protocol): Friedman's test
over settings, Nemenyi's post-hoc critical difference and its diagram. Every bootstrap has a fixed seed, so the
same runs give the same intervals (and the report the same bytes).
"""
from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass

import numpy as np

REPS = 2_000  # bootstrap resamples per interval (rliable's profiles use 2,000 too)
ALPHA = 0.05
MIN_SETTINGS = 5  # autorank: "requires at least five performance estimations"


def _rly():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from rliable import library, metrics
    return library, metrics


def _quiet(call, *args, **kwargs):
    """A library call without its warnings (arch's random_state deprecation) or prints (autorank's tables)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return call(*args, **kwargs)


def iqm(scores: np.ndarray) -> float:
    """rliable's aggregate_iqm (scipy's trim_mean, 25% off each end of every score) as scipy computes it, less
    scipy's argument handling, 20x its cost here: each interval draws it 2,000 times, the answer at each budget
    three times over. The same number, bit for bit (tests/test_overall.py)."""
    flat = np.asarray(scores).ravel()
    cut = int(0.25 * flat.size)
    return float(np.mean(np.partition(flat, (cut, flat.size - cut - 1))[cut:flat.size - cut]))


def intervals(scores: dict[str, np.ndarray], bootstrap: bool = True) -> dict[str, dict]:
    """name -> {"iqm", "iqm_ci", "mean", "mean_ci"}; scores: name -> (seeds x settings) matrix. Without
    `bootstrap` (too few seeds for an interval) the points alone, the intervals None."""
    if not bootstrap:
        from rliable import metrics

        return {k: {"iqm": float(metrics.aggregate_iqm(x)), "iqm_ci": None, "mean": float(metrics.aggregate_mean(x)),
                    "mean_ci": None} for k, x in scores.items()}
    library, metrics = _rly()

    def both(x):
        return np.array([iqm(x), metrics.aggregate_mean(x)])

    point, ci = _quiet(library.get_interval_estimates, scores, both, reps=REPS,
                       random_state=np.random.RandomState(0))
    return {k: {"iqm": float(point[k][0]), "iqm_ci": (float(ci[k][0][0]), float(ci[k][1][0])),
                "mean": float(point[k][1]), "mean_ci": (float(ci[k][0][1]), float(ci[k][1][1]))} for k in scores}


def profile(scores: dict[str, np.ndarray], taus: np.ndarray, bootstrap: bool = True) -> dict[str, dict]:
    """name -> {"share", "low", "high"}: the share of its runs scoring above each tau, with 95% intervals (without
    `bootstrap`, the shares alone)."""
    library, _ = _rly()
    if not bootstrap:
        return {k: {"share": library.score_distributions(x, taus).tolist(), "low": None, "high": None}
                for k, x in scores.items()}

    def shares(x):
        return library.score_distributions(x, taus)

    point, ci = _quiet(library.get_interval_estimates, scores, shares, reps=REPS,
                       random_state=np.random.RandomState(0))
    return {k: {"share": point[k].tolist(), "low": ci[k][0].tolist(), "high": ci[k][1].tolist()} for k in scores}


def improvement(scores: dict[str, np.ndarray], bootstrap: bool = True) -> dict[tuple[str, str], dict]:
    """(x, y) -> {"p", "ci"}: the probability that a run of x on a setting scores above a run of y there (ties count
    half), averaged over settings (rliable's probability_of_improvement), with its 95% interval from the stratified
    bootstrap rliable uses (each side's runs resampled within each setting, independently). The resampling is
    vectorised here: rliable's own takes ~6 s per pair at 2,000 resamples, and a report asks for every pair.
    Without `bootstrap`, the probabilities alone."""
    from rliable import metrics

    rng, out = np.random.RandomState(0), {}
    for x, sx in scores.items():
        for y, sy in scores.items():
            if x == y:
                continue
            if not bootstrap:
                out[(x, y)] = {"p": float(metrics.probability_of_improvement(sx, sy)), "ci": None}
                continue
            bx = np.take_along_axis(sx[None], rng.randint(0, len(sx), (REPS, *sx.shape)), axis=1)
            by = np.take_along_axis(sy[None], rng.randint(0, len(sy), (REPS, *sy.shape)), axis=1)
            a, b = bx[:, :, None, :], by[:, None, :, :]  # (resample, run of x, run of y, setting)
            boot = ((a > b).mean(axis=(1, 2)) + 0.5 * (a == b).mean(axis=(1, 2))).mean(axis=1)
            low, high = np.percentile(boot, [2.5, 97.5])
            out[(x, y)] = {"p": float(metrics.probability_of_improvement(sx, sy)), "ci": (float(low), float(high))}
    return out


@dataclass
class Ranks:
    """Mean rank per name over settings (1 is best), and when the settings suffice, the test over them."""

    mean: dict[str, float]
    test: str = ""  # "Friedman + Nemenyi" or "Wilcoxon signed-rank" (two names), "" when not run
    pvalue: float | None = None
    cd: float | None = None  # Nemenyi's critical difference in mean rank
    top: list[str] | None = None  # the names that cannot be told from the best rank (None: no test)
    reason: str = ""  # why no test was run
    result: object = None  # autorank's RankResult (for its diagram)


def ranks(table: dict[str, list[float]]) -> Ranks:
    """table: name -> its mean score on each setting (the same settings, in one order). Demšar's protocol through
    autorank, its non-parametric path forced: Friedman's test, then Nemenyi's critical difference."""
    import pandas as pd
    from scipy.stats import rankdata

    names = list(table)
    matrix = np.array([table[n] for n in names]).T  # settings x names
    mean = dict(zip(names, rankdata(-matrix, axis=1).mean(axis=0).tolist(), strict=True))
    if len(names) < 2:
        return Ranks(mean, reason="one model: nothing to rank")
    if len(matrix) < MIN_SETTINGS:
        return Ranks(mean, reason=f"Friedman's test and the critical difference need at least {MIN_SETTINGS} "
                                  f"settings (autorank); these results have {len(matrix)}")
    from autorank import autorank

    result = _quiet(autorank, pd.DataFrame(matrix, columns=names), alpha=ALPHA, verbose=False, order="descending",
                    force_mode="nonparametric")
    best = min(mean.values())
    if result.cd is not None:
        top = [n for n in names if mean[n] - best < result.cd]
        test = "Friedman + Nemenyi"
    else:  # two names: autorank's Wilcoxon signed-rank test
        top = names if result.pvalue >= ALPHA else [n for n in names if mean[n] == best]
        test = "Wilcoxon signed-rank"
    return Ranks(mean, test, float(result.pvalue), None if result.cd is None else float(result.cd), top, "", result)


def cd_diagram(result, path):
    """autorank's critical-difference diagram of a Friedman + Nemenyi result, as an SVG."""
    import matplotlib.pyplot as plt
    from autorank import plot_stats

    ax = _quiet(plot_stats, result, allow_insignificant=True)
    fig = ax.get_figure() if hasattr(ax, "get_figure") else plt.gcf()
    fig.savefig(path, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)
