"""The answer across settings: which model handles the task settings best overall, by how much, how sure we are,
and at what cost; built on the per-setting scores (suite/scoring.py) so nothing here can disagree with a board.

Every (model, setting, seed) enters as its normalised score (scoring.score_of: 0 is chance, 1 a perfect test
loss; a failed seed scores 0). A contender is a leaderboard row's label (the model, its init scheme where a board
holds several, "(tuned)"). Only settings every complete contender has enter, with the same number of seeds
each; a contender missing some of them is listed with what it misses, never averaged over fewer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from suite import uncertainty
from suite.compare import MIN_SEEDS
from suite.runs import Setting
from suite.scoring import Board, Row, fmt

TAUS = np.linspace(0.0, 1.0, 21)  # the performance profile's score thresholds


@dataclass
class Contender:
    label: str
    model: str
    scores: np.ndarray  # (seeds x settings) scores over the settings that enter
    mean: float = 0.0
    mean_ci: tuple | None = None
    iqm: float = 0.0
    iqm_ci: tuple | None = None
    rank: float | None = None  # mean rank over settings (1: best)
    top: bool | None = None  # within the critical difference of the best rank (None: no test was run)
    train_s: float = 0.0  # training seconds summed over the settings (each setting's mean over seeds)
    samples_per_s: float | None = None  # the mean over settings of its training samples/s
    params: float | None = None
    peak_mb: float | None = None
    solved: tuple[int, int] | None = None  # (runs solved, runs with a solve rule) over the settings
    bimodal: list[str] = field(default_factory=list)  # settings whose seeds fall apart (scoring.Row.bimodal)
    lr: list[str] = field(default_factory=list)  # the learning rate it trained at on each setting (Row.lr)

    @property
    def seeds(self) -> list[float]:
        return self.scores.flatten().tolist()


@dataclass
class Overall:
    settings: list[Setting]  # those that enter
    seeds: int  # per setting
    contenders: list[Contender]  # best IQM first
    incomplete: dict[str, list[str]] = field(default_factory=dict)  # label -> the settings it lacks
    left_out: list[str] = field(default_factory=list)  # settings not every complete contender has
    reason: str = ""  # why there is no overall verdict ("" when there is one)
    ranks: uncertainty.Ranks | None = None
    profile: dict = field(default_factory=dict)  # label -> performance profile over TAUS
    improvement: dict = field(default_factory=dict)  # (x, y) -> P(x > y) with its interval

    @property
    def intervals(self) -> bool:
        """Intervals are drawn from MIN_SEEDS seeds per setting on; with fewer, points only, and the page says so."""
        return self.seeds >= MIN_SEEDS

    @property
    def population(self) -> str:
        n, k = len(self.settings), self.seeds
        return f"{n} setting{'s' * (n != 1)} × {k} seed{'s' * (k != 1)}"


def _seed_scores(row: Row) -> dict[int, float]:
    from suite.scoring import score_of

    found = {seed: score_of(r) for seed, r in (*row.runs.items(), *row.failed.items())}
    return {seed: v for seed, v in sorted(found.items()) if v is not None}


def recipes(boards: list[Board]) -> list[str]:
    """The recipes the boards' rows hold, the answer's first: each model at its own ("searched") when any row is."""
    held = {r.recipe for b in boards for r in b.rows if not r.tuned and (r.runs or r.failed)}
    return sorted(held, key=lambda k: k != "searched")


def overall(boards: list[Board], detail: bool = True, recipe: str | None = None) -> Overall:
    """The overall verdict over every board's settings, among the rows of one recipe (default: the answer's,
    recipes()[0]) and the tuned ones; `detail`: also the performance profile and the probability of improvement of
    each contender over each other (the report's; the terminal leaves them out). Intervals are bootstrapped from
    MIN_SEEDS seeds per setting on."""
    recipe = recipe or next(iter(recipes(boards)), None)
    rows = {(b.setting, r.contender): r for b in boards for r in b.rows
            if _seed_scores(r) and (r.tuned or r.recipe == recipe)}
    labels = list(dict.fromkeys(label for _, label in rows))
    settings = list(dict.fromkeys(s for s, _ in rows))
    has = {label: {s for s, lab in rows if lab == label} for label in labels}
    complete = [lab for lab in labels if has[lab] == set(settings)]
    if len(complete) < 2:  # then the settings every contender has, if any
        shared = set.intersection(*has.values()) if has else set()
        complete = [lab for lab in labels if shared <= has[lab]] if shared else []
        settings = [s for s in settings if s in shared]
    out = Overall(settings, 0, [], {lab: [s.label for s in settings if s not in has[lab]] for lab in labels
                                    if lab not in complete})
    out.left_out = [s.label for s in dict.fromkeys(s for s, _ in rows) if s not in settings]
    if len(complete) < 2 or not settings:
        out.reason = "fewer than two models share a task setting: nothing to compare"
        return out
    per = {(s, lab): _seed_scores(rows[(s, lab)]) for s in settings for lab in complete}
    out.seeds = min(len(v) for v in per.values())
    matrices = {lab: np.array([[list(per[(s, lab)].values())[i] for s in settings] for i in range(out.seeds)])
                for lab in complete}
    estimates = uncertainty.intervals(matrices, bootstrap=out.intervals)
    out.ranks = uncertainty.ranks({lab: matrices[lab].mean(axis=0).tolist() for lab in complete})
    for lab in complete:
        mine = [rows[(s, lab)] for s in settings]
        c = Contender(lab, mine[0].model, matrices[lab], **{k: v for k, v in estimates[lab].items()})
        c.rank = out.ranks.mean[lab]
        c.top = None if out.ranks.top is None else lab in out.ranks.top
        c.train_s = float(sum(r.stats["train_s"].mean or 0.0 for r in mine))
        c.samples_per_s, c.params, c.peak_mb = (_mean(r.stats[k].mean for r in mine) for k in (
            "train_samples_per_s", "n_params", "peak_mem_mb"))
        flags = [r.solved for r in mine if r.solved]
        c.solved = (sum(f[0] for f in flags), sum(f[1] for f in flags)) if flags else None
        c.bimodal = [s.label for s, r in zip(settings, mine, strict=True) if r.bimodal]
        c.lr = [r.lr for r in mine]
        out.contenders.append(c)
    out.contenders.sort(key=lambda c: (-c.iqm, -c.mean, c.label))
    if not any(m.any() for m in matrices.values()):  # nobody to call best: say what happened instead
        out.reason = "every model scored 0 on every setting (each run failed or was no better than chance)"
    if detail:
        out.profile = uncertainty.profile(matrices, TAUS, bootstrap=out.intervals)
        out.improvement = uncertainty.improvement(matrices, bootstrap=out.intervals)
    return out


def _mean(values) -> float | None:
    found = [v for v in values if v is not None]
    return sum(found) / len(found) if found else None


def choices(boards: list[Board]) -> list[dict]:
    """Per setting, the models that cannot be told from the best (its winner, or the tie), cheapest first, with
    their cost; none where the board has no verdict (e.g. nothing is clear of chance), with the reason."""
    out = []
    for b in boards:
        picked = [r for r in b.rows if r.stats.get("test_metric") and r.stats["test_metric"].mark in ("best", "tied")]
        picked.sort(key=lambda r: r.stats["train_s"].mean if r.stats["train_s"].mean is not None else float("inf"))
        out.append({"setting": b.setting, "rows": picked, "reason": "" if picked else b.verdict.reason})
    return out


def frontier(points: dict[str, tuple[float, float]]) -> set[str]:
    """The names no other beats on both score (higher) and cost (lower): the quality-against-cost frontier."""
    points = {n: p for n, p in points.items() if None not in p}
    return {n for n, (score, cost) in points.items()
            if not any(s >= score and c <= cost and (s, c) != (score, cost) for m, (s, c) in points.items() if m != n)}


def leaders(o: Overall) -> list[str] | None:
    """The highest IQM's contender and those it cannot be told from (their IQM intervals reach its own), best first;
    None when no model can be called ahead: no verdict, fewer than MIN_SEEDS seeds, or the best not clear of chance."""
    if o.reason or not o.intervals or o.contenders[0].iqm_ci[0] <= 0:
        return None
    best = o.contenders[0]
    return [best.label] + [c.label for c in o.contenders[1:] if c.iqm_ci[1] >= best.iqm_ci[0]]


def headline(o: Overall) -> str:
    """The answer in one sentence, as far as the seeds carry it."""
    if o.reason:
        return f"No overall verdict: {o.reason}."
    best = o.contenders[0]
    text = f"Over {o.population}, {best.label} has the highest interquartile mean score, {fmt(best.iqm, 'ratio')}"
    if not o.intervals:
        return text + f" (fewer than {MIN_SEEDS} seeds per setting: no intervals, so no model is called ahead)."
    lo, hi = best.iqm_ci
    text += f" (95% CI {fmt(lo, 'ratio')} to {fmt(hi, 'ratio')})"
    level = leaders(o)
    if level is None:
        return text + ": no model is clearly better than chance overall."
    if len(level) == 1:
        return text + ": its interval lies above every other model's."
    return text + f"; it cannot be told from {', '.join(level[1:])} (their intervals overlap)."


def table_rows(o: Overall) -> list[dict[str, str]]:
    """The overall table as text, one dict per contender (the terminal, summary.md and the page show these)."""
    def ci(v):
        return f" [{fmt(v[0], 'ratio')}, {fmt(v[1], 'ratio')}]" if v else ""

    rows = []
    for c in o.contenders:
        group = "–" if c.top is None else "top" if c.top else "below"
        rows.append({"model": c.label, "lr": _lrs(c.lr), "score": f"{fmt(c.mean, 'ratio')}{ci(c.mean_ci)}",
                     "iqm": f"{fmt(c.iqm, 'ratio')}{ci(c.iqm_ci)}", "rank": f"{c.rank:.2f}", "group": group,
                     "solved": f"{c.solved[0]}/{c.solved[1]}" if c.solved else "–",
                     "train_s": fmt(c.train_s, "seconds"),
                     "samples_per_s": "–" if c.samples_per_s is None else fmt(c.samples_per_s, "rate"),
                     "params": "–" if c.params is None else fmt(c.params, "count"),
                     "peak_mb": "–" if c.peak_mb is None else fmt(c.peak_mb, "mb")})
    return rows


HEADERS = {"model": "model", "lr": "lr (per setting)", "score": "score mean [95% CI]", "iqm": "IQM [95% CI]",
           "rank": "mean rank", "group": "CD group", "solved": "solved", "train_s": "train s",
           "samples_per_s": "samples/s", "params": "params", "peak_mb": "peak MB"}
SCORE = ("score = 1 - test loss / chance loss, clipped to [0, 1] (0: no better than the best input-blind guess, 1: a "
         "test loss of zero); a failed or diverged seed scores 0")


def _lrs(values: list[str]) -> str:
    """Its learning rates over the settings: one value, else each setting's in order."""
    return values[0] if len(set(values)) == 1 else " / ".join(values) if values else "–"


def notes(o: Overall) -> list[str]:
    """What the table rests on, and what it leaves out: every line a reader needs before trusting it."""
    out = [f"{o.population}: {', '.join(s.label for s in o.settings)}; {SCORE}."] if o.settings else []
    if o.left_out:
        out.append(f"Left out (not every model has them): {', '.join(o.left_out)}.")
    out += [f"{label} is not in the table: it lacks {', '.join(missing)}." for label, missing in o.incomplete.items()]
    if o.settings and not o.intervals:
        out.append(f"Fewer than {MIN_SEEDS} seeds per setting: no intervals are drawn and no model is called ahead.")
    if o.ranks is not None:
        out.append(f"Ranks over settings: {o.ranks.test}, p = {o.ranks.pvalue:.3g}"
                   + (f", critical difference {o.ranks.cd:.2f}" if o.ranks.cd else "") + "; CD group top: within it of "
                   "the best mean rank." if o.ranks.test else f"Mean ranks only: {o.ranks.reason}.")
    mixed = [f"{c.label} ({', '.join(c.bimodal)})" for c in o.contenders if c.bimodal]
    if mixed:
        out.append("Seeds that fall apart (some solved, some at chance), shown seed by seed in the plot: "
                   + "; ".join(mixed) + ".")
    return out


def slope(lengths: list[int], values: list[float]) -> float | None:
    """The least-squares slope of log(value) against log(T); None with fewer than two lengths."""
    pairs = [(math.log(t), math.log(v)) for t, v in zip(lengths, values, strict=True) if v and v > 0]
    if len(pairs) < 2:
        return None
    x, y = zip(*pairs, strict=True)
    return float(np.polyfit(x, y, 1)[0])
