"""Leaderboards from the runs: a row a model a task setting, scored over seeds, beside published figures."""
from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from suite.compare import decide, interval
from suite.report.store import Run, Setting, setting_of
from suite.summary import Group, mean_std

BANNERS = {
    "smoke": "Smoke profile: these runs check the plumbing end to end; their numbers are not results.",
    "cpu": "cpu profile: a small CPU budget (about 12,000 parameters a model, a few epochs, and the 5,000-digit "
           "MNIST subset when offline): the rankings are indicative, not the literature's protocols.",
}
SETTINGS = (("train.epochs", "epochs"), ("train.steps_per_epoch", "steps/epoch"), ("train.batch_size", "batch"),
            ("train.lr", "lr"), ("model.hidden_size", "hidden"), ("model.num_layers", "layers"),
            ("model.init", "init"), ("model.nonlinearity", "nonlinearity"))


def banners(boards: list) -> list[str]:
    """What a reader must know before reading any number: a plumbing check, or a small budget."""
    profiles = {r.tags.get("profile") for b in boards for row in b.rows for r in row.runs.values()}
    return [BANNERS[p] for p in sorted(p for p in profiles if p in BANNERS)]


def _values(runs, key: str) -> str:
    return ", ".join(dict.fromkeys(str(r.params.get(key, r.tags.get(key, ""))) for r in runs)) or "–"


def _context(board: Board):
    """The data, profile and budget of the runs shown, and each row's own hyperparameters and init."""
    runs = [r for row in board.rows for r in row.runs.values()]
    if not runs:
        return
    data = ", ".join(sorted({r.tags.get("data_source", "?") for r in runs}))
    board.context = (f"data {data} · profile {_values(runs, 'profile')} · {_values(runs, 'train.epochs')} epochs"
                     + (f" × {_values(runs, 'train.steps_per_epoch')} steps" if any(
                         r.params.get("train.steps_per_epoch") not in (None, "None") for r in runs) else ""))
    for row in board.rows:
        mine = list(row.runs.values())
        row.settings = {label: _values(mine, key) for key, label in SETTINGS
                        if mine and any(key in r.params for r in mine)}


@dataclass
class Row:
    """A model (tuned or not, with one init scheme) on one setting: the finished run of each seed, and the seeds
    that are not."""

    model: str
    tuned: bool
    init: str = ""  # the runs' initialisation scheme (tag `init`)
    show_init: bool = False  # the board holds this model with several schemes: say which
    runs: dict = field(default_factory=dict)  # seed -> the newest FINISHED run
    failed: dict = field(default_factory=dict)  # seed -> the newest run, none of the seed's having finished
    missing: list = field(default_factory=list)  # seeds the experiment planned that have no run at all
    cells: dict = field(default_factory=dict)  # column -> {"text", "mean", "best"}
    settings: dict = field(default_factory=dict)  # the runs' hyperparameters, as shown beside the leaderboard
    registered: list = field(default_factory=list)  # its runs' versions in the Model Registry (rnnbench register)
    reference: dict | None = None

    @property
    def label(self) -> str:
        name = f"{self.model} · {self.init}" if self.show_init else self.model
        return f"{name} (tuned)" if self.tuned else name

    @property
    def group(self) -> Group:
        return Group([("FINISHED", r.metrics) for r in self.runs.values()] + [("FAILED", {})] * len(self.failed))

    @property
    def studies(self) -> list[str]:
        return sorted({r.tags["study"] for r in self.runs.values() if "study" in r.tags})


@dataclass
class Board:
    setting: Setting
    rows: list[Row]
    metric: str  # acc or mse
    columns: list[tuple[str, str]]  # (key, header)
    references: list[dict]
    incomparable: list[dict] = field(default_factory=list)  # published figures whose protocol differs, and why
    verdict: str = ""  # why no winner is marked in the test metric column ("" when one is)
    context: str = ""  # the data, profile and budget the runs shown were trained with
    code_versions: int = 1  # distinct code fingerprints among the runs shown
    would_rerun: list[str] = field(default_factory=list)  # cells whose run's code differs from this checkout's

    @property
    def problems(self) -> list[dict]:
        """Failed and missing cells, one entry a seed."""
        out = []
        for row in self.rows:
            out += [{"row": row, "seed": s, "run": r, "status": _status(r), "error": r.tags.get("error", "")}
                    for s, r in sorted(row.failed.items())]
            out += [{"row": row, "seed": s, "run": None, "status": "MISSING", "error": "planned, never run"}
                    for s in row.missing]
        return out


def _status(run: Run) -> str:
    """A run's status; a RUNNING one whose worker is gone or silent says it is stale (the report writes nothing,
    so it does not reap it: the next job does)."""
    from suite.cluster import stale_from

    stale = run.status == "RUNNING" and stale_from(run.tags, run.start) is not None
    return "RUNNING but stale (its worker is gone or silent)" if stale else run.status


FORMATS = {"acc": ".3f", "mse": ".3g", "ratio": ".3f", "count": ",.0f", "rate": ",.0f"}


def fmt(value: float, kind: str) -> str:
    return format(value, FORMATS[kind])


def _cell(values: list[float], kind: str, spread: bool = True) -> dict:
    found = mean_std(values)
    if found is None:
        return {"text": "–", "mean": None, "std": None, "ci": None, "best": False, "top": False, "ci_text": ""}
    mean, std, _ = found
    text = fmt(mean, kind) if std is None or not spread else f"{fmt(mean, kind)} ± {fmt(std, kind)}"
    ci = interval(values) if spread else None
    return {"text": text, "mean": mean, "std": std, "ci": ci, "best": False, "top": False,
            "ci_text": f"95% CI {fmt(ci[0], kind)} to {fmt(ci[1], kind)}" if ci else ""}


def boards(cells: list[Run], planned: set | None) -> list[Board]:
    """One leaderboard a setting, a row a model (and its tuned variant), best value per column marked."""
    from suite.models import MODELS
    from tasks import TASKS
    from tasks.base import OUTPUT_KINDS

    latest, rows = {}, {}
    for run in cells:  # oldest first: the newest finished run of a cell wins, else its newest run
        key = (setting_of(run), run.tags["model"], run.tags.get("tuned") == "true", run.tags.get("init", ""),
               int(run.tags["seed"]))
        if run.status == "FINISHED" or latest.get(key, run).status != "FINISHED":
            latest[key] = run
    for (setting, model, tuned, init, seed), run in latest.items():
        row = rows.setdefault((setting, model, tuned, init), Row(model, tuned, init))
        (row.runs if run.status == "FINISHED" else row.failed)[seed] = run
    inits = defaultdict(set)
    for setting, model, tuned, init in rows:
        inits[(setting, model, tuned)].add(init)
    for (setting, model, tuned, _), row in rows.items():
        row.show_init = len(inits[(setting, model, tuned)]) > 1
    have = {(m, s, seed) for (s, m, _, _, seed) in latest}
    for model, setting, seed in sorted(planned or (), key=lambda c: (c[1].task, c[1].seq_len, c[1].variant, *c[::2])):
        if (model, setting, seed) not in have:
            rows.setdefault((setting, model, False, ""), Row(model, False)).missing.append(seed)
    task_order, model_order = list(TASKS), list(MODELS)
    def rank(name, order):
        return order.index(name) if name in order else len(order)

    def by_setting(s):
        return rank(s.task, task_order), s.task, s.seq_len, s.variant

    out = []
    for setting in sorted({s for s, *_ in rows}, key=by_setting):
        mine = sorted((r for (s, *_), r in rows.items() if s == setting),
                      key=lambda r: (rank(r.model, model_order), r.model, r.tuned, r.init))
        metric = OUTPUT_KINDS[TASKS[setting.task].output_kind].metric if setting.task in TASKS \
            else next((r.group.metric for r in mine if r.group.metric), "acc")
        board = Board(setting, mine, metric, [], [])
        _score(board)
        _check_code(board)
        _context(board)
        out.append(board)
    return out


def _score(board: Board):
    metric = board.metric
    name, better = ("test accuracy", "max") if metric == "acc" else ("test MSE", "min")
    columns = [("test_metric", name, metric, better),
               ("test_vs_chance", "test loss / chance", "ratio", "min"),
               ("n_params", "params", "count", None),
               ("train_samples_per_s", "train samples/s", "rate", "max")]
    for row in board.rows:
        g = row.group
        for key, _, kind, _ in columns:
            row.cells[key] = _cell(g.values(key) if g.ok else [], kind, spread=kind != "count")
        solved = g.solved
        row.cells["solved"] = {"text": f"{solved[0]}/{solved[1]}" if solved else "–", "mean": None, "best": False,
                               "top": False, "ci_text": ""}
    ratios = {id(r): r.group.values("test_vs_chance") for r in board.rows if r.group.ok}
    for key, _, _, better in columns:  # suite/compare.py: a winner beats chance and every other row beyond noise
        if not better:
            continue
        rows = {id(r): r.group.values(key) for r in board.rows if r.group.ok}
        verdict = decide(rows, better == "max", None if key == "train_samples_per_s" else ratios)
        for r in board.rows:
            r.cells[key]["best"] = id(r) == verdict.winner
            r.cells[key]["top"] = verdict.winner is None and id(r) in verdict.top
        if key == "test_metric":
            board.verdict = verdict.reason
    board.columns = [(k, h) for k, h, _, _ in columns[:2]]
    if any(r.group.solved for r in board.rows):
        board.columns.append(("solved", "solved"))
    board.columns += [(k, h) for k, h, _, _ in columns[2:]]


def _check_code(board: Board):
    """Whether the runs shown come from one code version, and which would train again with today's code."""
    from suite.fingerprint import code_fingerprint
    from suite.models import MODELS
    from tasks import TASKS

    s = board.setting
    prints = {r.tags.get("code_fingerprint", "") for row in board.rows for r in row.runs.values()}
    board.code_versions = len(prints)
    for row in board.rows:
        if row.model not in MODELS or s.task not in TASKS:
            continue
        today = code_fingerprint(row.model, s.task)
        board.would_rerun += [f"{row.label} seed {seed}" for seed, r in sorted(row.runs.items())
                              if r.tags.get("code_fingerprint", "") != today]


def facts(all_boards: list[Board], experiments: list, planned: set | None) -> list[tuple[str, str]]:
    """What was run, from the runs the leaderboards show: profile, tasks, models, seeds, device, versions, git sha."""
    rows = [row for b in all_boards for row in b.rows]
    shown = [r for row in rows for r in (*row.runs.values(), *row.failed.values())]

    def values(key, runs=shown):
        count = Counter(r.tags[key] for r in runs if r.tags.get(key))
        if len(count) <= 1:
            return next(iter(count), "–")
        return ", ".join(f"{v} ({n} runs)" for v, n in sorted(count.items()))

    finished, failed, missing = (sum(len(getattr(row, k)) for row in rows) for k in ("runs", "failed", "missing"))
    starts = sorted(r.start for r in shown if r.start)
    day = lambda ms: datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")  # noqa: E731
    data = lambda b: values("data_source", [r for row in b.rows for r in (*row.runs.values(), *row.failed.values())])  # noqa: E731
    out = [("experiments", ", ".join(f"{e.name} (id {e.experiment_id})" for e in experiments)),
           ("profile", values("profile")),
           ("tasks", ", ".join(f"{b.setting.label} ({data(b)})" for b in all_boards) or "–"),
           ("models", ", ".join(dict.fromkeys(row.model for row in rows)) or "–"),
           ("seeds", ", ".join(map(str, sorted({s for row in rows for s in (*row.runs, *row.failed, *row.missing)})))
            or "–"),
           ("cells", f"{finished} finished, {failed} failed or stopped, {missing} missing"
                     + ("" if planned is not None or not rows else " (no benchmark logged its plan here)")),
           ("device", values("device")), ("CPU", values("cpu")), ("GPU", values("gpu")),
           ("precision", values("precision")),
           ("torch", values("torch_version")), ("Python", values("python_version")), ("CUDA", values("cuda_version")),
           ("git sha", values("git_sha"))]
    if starts:
        out.append(("runs started", f"{day(starts[0])} to {day(starts[-1])}"))
    return [(k, v) for k, v in out if v != "–" or k in ("experiments", "profile")]


def write_csv(path: Path, all_boards: list[Board]):
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["task", "seq_len", "variant", "model", "init", "tuned", "n", "n_failed", "n_missing", "metric",
                "test_mean", "test_std", "test_ci95_low", "test_ci95_high", "verdict", "test_vs_chance_mean",
                "test_vs_chance_std", "solved", "n_params", "data_source", "profile", "epochs", "steps_per_epoch",
                "batch_size", "lr", "hidden_size", "num_layers",
                "train_samples_per_s_mean", "train_samples_per_s_std", "run_ids"])
    num = lambda v: "" if v is None else repr(v)  # noqa: E731
    for b in all_boards:
        for r in b.rows:
            c = r.cells
            w.writerow([b.setting.task, b.setting.seq_len, b.setting.variant, r.model, r.init, str(r.tuned).lower(),
                        len(r.runs), len(r.failed), len(r.missing), b.metric or "", num(c["test_metric"]["mean"]),
                        num(c["test_metric"]["std"]), *(num(v) for v in (c["test_metric"]["ci"] or (None, None))),
                        "best" if c["test_metric"]["best"] else "tied for best" if c["test_metric"]["top"] else "",
                        num(c["test_vs_chance"]["mean"]), num(c["test_vs_chance"]["std"]),
                        c["solved"]["text"].replace("–", ""), num(c["n_params"]["mean"]),
                        ", ".join(sorted({run.tags.get("data_source", "") for run in r.runs.values()})),
                        _values(list(r.runs.values()), "profile") if r.runs else "",
                        *(r.settings.get(k, "") for k in ("epochs", "steps/epoch", "batch", "lr", "hidden", "layers")),
                        num(c["train_samples_per_s"]["mean"]), num(c["train_samples_per_s"]["std"]),
                        " ".join(run.id for _, run in sorted(r.runs.items()))])
    path.write_text(out.getvalue())
