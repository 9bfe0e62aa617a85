"""The scores: each task setting's leaderboard, computed once from the runs, with its verdicts (suite/compare.py).

The terminal table (suite/console.py), the report's pages, summary.md and leaderboard.csv (suite/report/) and
`rnnbench register` read these objects and only format them, so none of them can disagree with another.

A row is one model (tuned or not, with one init scheme) on one setting. Its statistics are over the newest
finished run of each seed; a seed whose every run failed or stopped counts in `failed`, a planned seed with no
run in `missing`, and neither enters a statistic. Numbers are written the same way everywhere (FORMATS).
"""
from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from suite.compare import Verdict, decide, interval
from suite.runs import Run, Setting, counted, later_failures

FORMATS = {"acc": ".3f", "mse": ".3g", "ratio": ".3f", "count": ",.0f", "rate": ",.0f", "seconds": ".1f", "mb": ",.0f"}


def fmt(value: float, unit: str) -> str:
    """A number as every table writes it: unit is acc, mse, ratio, count, rate, seconds or mb."""
    return format(value, FORMATS[unit])


def finite(values) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


@dataclass
class Stat:
    """One statistic of a row over its seeds: the finite values, their mean, sample std (None for one value) and
    Student-t 95% interval of the mean (None for fewer than two values)."""

    values: list[float]
    mean: float | None = None
    std: float | None = None
    ci: tuple[float, float] | None = None
    mark: str = ""  # "best": beats every other row beyond seed noise; "tied": cannot be told from the best; ""

    @classmethod
    def of(cls, values) -> Stat:
        values = finite(values)
        if not values:
            return cls([])
        return cls(values, statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None,
                   interval(values))

    @property
    def n(self) -> int:
        return len(self.values)

    def text(self, unit: str, spread: bool = True) -> str:
        """"mean ± std" (the mean alone for one value or without spread), "–" when there is none."""
        if self.mean is None:
            return "–"
        if self.std is None or not spread:
            return fmt(self.mean, unit)
        return f"{fmt(self.mean, unit)} ± {fmt(self.std, unit)}"

    def ci_text(self, unit: str) -> str:
        return f"95% CI {fmt(self.ci[0], unit)} to {fmt(self.ci[1], unit)}" if self.ci else ""


def score_of(run: Run) -> float | None:
    """A run's normalised score: 1 - test loss / chance loss, clipped to [0, 1], so 0 is no better than the best
    input-blind guess (or worse) and 1 a test loss of zero. A FAILED run (it crashed or diverged) and a finished one
    whose loss is not finite score 0, as chance; a run that never finished (KILLED, RUNNING) has no score."""
    if run.status == "FAILED":
        return 0.0
    if run.status != "FINISHED":
        return None
    ratio = _vs_chance(run)
    return 0.0 if ratio is None or not math.isfinite(ratio) else min(max(1.0 - ratio, 0.0), 1.0)


# The statistics of every row: key -> (the run metric it is read from, unit, which way is better (None: no
# verdict), whether a winner must also be clear of chance). test_metric is test_acc or test_mse by the board; the
# score (score_of) counts failed seeds too, as chance.
STATS = {"test_metric": (None, None, "better", True), "test_loss": ("test_loss", "ratio", None, False),
         "test_vs_chance": ("test_vs_chance", "ratio", "min", True), "n_params": ("n_params", "count", None, False),
         "train_samples_per_s": ("train_samples_per_s", "rate", "max", False),
         "epoch_time_s": ("epoch_time_s", "seconds", None, False), "score": (None, "ratio", None, False),
         "train_s": (None, "seconds", None, False), "peak_mem_mb": ("peak_mem_mb", "mb", None, False)}


@dataclass
class Row:
    """A model (tuned or not, with one init scheme) on one setting."""

    model: str
    tuned: bool
    init: str = ""  # the runs' initialisation scheme (tag `init`)
    show_init: bool = False  # the board holds this model with several schemes: say which
    recipe: str = "pinned"  # how its learning rate was chosen: "searched" (its own: suite/recipe.py) or "pinned"
    show_recipe: bool = False  # the board holds this model with both recipes: say which
    runs: dict = field(default_factory=dict)  # seed -> the newest FINISHED run
    failed: dict = field(default_factory=dict)  # seed -> its newest run, none of the seed's having finished
    later: dict = field(default_factory=dict)  # seed -> its newest run, FAILED or KILLED after the one in runs
    missing: list = field(default_factory=list)  # seeds a benchmark planned that have no run at all
    stats: dict = field(default_factory=dict)  # STATS key -> Stat
    solved: tuple[int, int] | None = None  # (seeds solved, seeds scored) when the task has a solve rule
    settings: dict = field(default_factory=dict)  # the runs' hyperparameters as the report shows them (it fills them)
    reference: dict | None = None  # a published figure beside this row (attached by suite/report/references.py)
    registered: list = field(default_factory=list)  # its runs' Model Registry versions (attached by the report)

    @property
    def _model(self) -> str:
        return f"{self.model} · {self.init}" if self.show_init else self.model

    @property
    def name(self) -> str:
        """The model, its init scheme where the board holds several, and its recipe where it holds both."""
        return self._model + ({"searched": " (own lr)", "pinned": " (shared lr)"}.get(self.recipe, "")
                              * self.show_recipe)

    @property
    def label(self) -> str:
        return f"{self.name} (tuned)" if self.tuned else self.name

    @property
    def contender(self) -> str:
        """Its name in the answer, which takes one recipe at a time (suite/overall.py): the label but the recipe."""
        return f"{self._model} (tuned)" if self.tuned else self._model

    @property
    def lr(self) -> str:
        """The learning rate (and weight decay, where not 0) its runs trained at, as the boards show it."""
        found = {(r.params.get("train.lr"), r.params.get("train.weight_decay")) for r in self.runs.values()}
        return "; ".join(f"{float(lr):g}" + (f", wd {float(wd):g}" if wd and float(wd) else "")
                         for lr, wd in sorted(p for p in found if p[0] is not None)) or "–"

    @property
    def studies(self) -> list[str]:
        return sorted({r.tags["study"] for r in self.runs.values() if "study" in r.tags})

    @property
    def code_versions(self) -> int:
        """Distinct code fingerprints among the runs shown: more than one means the seeds ran different code."""
        return len({r.tags.get("code_fingerprint", "") for r in self.runs.values()})

    @property
    def bimodal(self) -> bool:
        """The seeds fall apart: some solved the task and some did not, or their scores form two groups over 0.5
        apart (a mean and a std describe such seeds badly: the pages show each seed)."""
        if self.solved and 0 < self.solved[0] < self.solved[1]:
            return True
        scores = sorted(self.stats["score"].values) if "score" in self.stats else []
        return len(scores) > 1 and max(b - a for a, b in zip(scores, scores[1:], strict=False)) > 0.5

    def best_run(self, metric: str) -> Run:
        """The seed's run with the best test metric (acc: highest; mse: lowest)."""
        key, pick = f"test_{metric}", max if metric == "acc" else min
        return pick(self.runs.values(), key=lambda r: r.metrics.get(key, float("nan")))


@dataclass
class Board:
    """One setting's leaderboard: its rows and the verdict of its test metric column."""

    setting: Setting
    rows: list[Row]
    metric: str  # acc or mse
    verdict: Verdict = field(default_factory=lambda: Verdict(None, [], "one model: nothing to compare"))
    context: str = ""  # the data, profile and budget the runs shown were trained with (filled by the report)
    would_rerun: list[str] = field(default_factory=list)  # seeds whose run's code differs from this checkout's (idem)
    references: list = field(default_factory=list)  # published figures that match (attached by the report)
    incomparable: list = field(default_factory=list)  # published figures whose protocol differs, and why

    @property
    def columns(self) -> list[tuple[str, str]]:
        """(statistic, header) of the columns a leaderboard shows, in order."""
        name = "test accuracy" if self.metric == "acc" else "test MSE"
        solved = [("solved", "solved")] if any(r.solved for r in self.rows) else []
        return [("test_metric", name), ("test_vs_chance", "test loss / chance"), *solved, ("n_params", "params"),
                ("train_samples_per_s", "train samples/s")]

    @property
    def bimodal(self) -> list[str]:
        """Rows whose seeds fall apart (Row.bimodal), with how: "gru (2 of 3 seeds solved)"."""
        return [f"{r.label} ({r.solved[0]} of {r.solved[1]} seeds solved)" if r.solved and 0 < r.solved[0] <
                r.solved[1] else f"{r.label} (scores {', '.join(fmt(v, 'ratio') for v in r.stats['score'].values)})"
                for r in self.rows if r.runs and r.bimodal]

    @property
    def mixed_code(self) -> list[str]:
        """Rows whose seeds ran different versions of the code (each model's code is its own, so only a mix within
        a row says the results are not one experiment)."""
        return [row.label for row in self.rows if row.code_versions > 1]

    @property
    def problems(self) -> list[dict]:
        """Failed and missing cells, one entry a seed."""
        out = []
        for row in self.rows:
            out += [{"row": row, "seed": s, "run": r, "status": r.shown_status, "error": r.tags.get("error", "")}
                    for s, r in sorted(row.failed.items())]
            out += [{"row": row, "seed": s, "run": None, "status": "MISSING", "error": "planned, never run"}
                    for s in row.missing]
            out += [{"row": row, "seed": s, "run": r, "status": f"{r.status} after an earlier run finished (shown)",
                     "error": r.tags.get("error", "")} for s, r in sorted(row.later.items())]
        return out


def unit_of(key: str, metric: str) -> str:
    return metric if key == "test_metric" else STATS[key][1]


def boards(runs: list[Run], planned: set | None = None) -> list[Board]:
    """One leaderboard a setting, a row a model (and its tuned variant, and each init scheme), scored over seeds.

    `runs` are cell runs oldest first: a seed's newest finished run counts, else its newest run (failed).
    `planned`: (model, setting, seed) of every cell a benchmark planned; those with no run are missing.
    """
    from suite.models import MODELS
    from tasks import TASKS
    from tasks.base import OUTPUT_KINDS

    latest, rows = counted(runs), {}
    for (setting, model, tuned, init, recipe, seed), run in latest.items():
        row = rows.setdefault((setting, model, tuned, init, recipe), Row(model, tuned, init, recipe=recipe))
        (row.runs if run.status == "FINISHED" else row.failed)[seed] = run
    for (setting, model, tuned, init, recipe, seed), run in later_failures(runs).items():
        rows[(setting, model, tuned, init, recipe)].later[seed] = run
    inits, recipes = defaultdict(set), defaultdict(set)
    for setting, model, tuned, init, recipe in rows:
        inits[(setting, model, tuned, recipe)].add(init)
        recipes[(setting, model, tuned, init)].add(recipe)
    for (setting, model, tuned, init, recipe), row in rows.items():
        row.show_init = len(inits[(setting, model, tuned, recipe)]) > 1
        row.show_recipe = len(recipes[(setting, model, tuned, init)]) > 1
    have = {(m, s, seed) for (s, m, *_, seed) in latest}
    for model, setting, seed in sorted(planned or (), key=lambda c: (c[1], c[0], c[2])):
        if (model, setting, seed) not in have:  # into the model's row there (searched first), else a row of its own
            mine = sorted((k for k in rows if k[:2] == (setting, model) and not k[2]), key=lambda k: k[4] != "searched")
            key = mine[0] if mine else (setting, model, False, "", "pinned")
            rows.setdefault(key, Row(model, False)).missing.append(seed)

    def rank(name, order):
        return order.index(name) if name in order else len(order)

    def metric_of(setting, mine):
        if setting.task in TASKS:
            return OUTPUT_KINDS[TASKS[setting.task].output_kind].metric
        return next(("acc" if "test_acc" in r.metrics else "mse" for row in mine for r in row.runs.values()), "acc")

    out = []
    settings = sorted({s for s, *_ in rows}, key=lambda s: (rank(s.task, list(TASKS)), s.task, s.seq_len, s.variant))
    for setting in settings:
        mine = sorted((r for (s, *_), r in rows.items() if s == setting),
                      key=lambda r: (rank(r.model, list(MODELS)), r.model, r.tuned, r.init))
        board = Board(setting, mine, metric_of(setting, mine))
        score(board)
        out.append(board)
    return out


def score(board: Board):
    """Every row's statistics, and each column's verdict: the best row is marked only beyond seed noise."""
    for row in board.rows:
        for key, (metric, *_) in STATS.items():
            row.stats[key] = Stat.of(_value(key, metric or f"test_{board.metric}", r) for r in row.runs.values())
        row.stats["score"] = Stat.of(score_of(r) for r in (*row.runs.values(), *row.failed.values()))
        flags = [r.metrics["solved"] for r in row.runs.values() if "solved" in r.metrics]
        if row.runs and len(flags) == len(row.runs):
            row.solved = (sum(f == 1 for f in flags), len(flags))
    scored = [i for i, r in enumerate(board.rows) if r.runs]
    ratios = {i: board.rows[i].stats["test_vs_chance"].values for i in scored}
    for key, (_, _, better, clear_of_chance) in STATS.items():
        if better is None:
            continue
        higher = board.metric == "acc" if better == "better" else better == "max"
        verdict = decide({i: board.rows[i].stats[key].values for i in scored}, higher,
                         ratios if clear_of_chance else None)
        for i, row in enumerate(board.rows):
            row.stats[key].mark = "best" if i == verdict.winner else "tied" if verdict.winner is None and \
                i in verdict.top else ""
        if key == "test_metric":
            board.verdict = verdict


def _value(key: str, metric: str, run: Run) -> float | None:
    if key == "test_vs_chance":
        return _vs_chance(run)
    if key == "train_s":  # training seconds: the epochs' mean time (validation included) times the epochs trained
        m = run.metrics
        return m["epoch_time_s"] * m["epochs_trained"] if "epoch_time_s" in m and "epochs_trained" in m else None
    return run.metrics.get(metric)


def _vs_chance(run: Run) -> float | None:
    m = run.metrics
    return m.get("test_vs_chance", m["test_loss"] / m["chance_loss"] if m.get("chance_loss") and "test_loss" in m
                 else None)
