"""Leaderboards from the runs: a row a model a task setting, scored over seeds, beside published figures."""
from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml

from suite.report.store import Run, Setting, setting_of
from suite.summary import Group, mean_std

REFERENCES = Path(__file__).resolve().parent.parent / "references.yaml"


@dataclass
class Row:
    """A model (tuned or not) on one setting: the finished run of each seed, and the seeds that are not."""

    model: str
    tuned: bool
    runs: dict = field(default_factory=dict)  # seed -> the newest FINISHED run
    failed: dict = field(default_factory=dict)  # seed -> the newest run, none of the seed's having finished
    missing: list = field(default_factory=list)  # seeds the experiment planned that have no run at all
    cells: dict = field(default_factory=dict)  # column -> {"text", "mean", "best"}
    reference: dict | None = None

    @property
    def label(self) -> str:
        return f"{self.model} (tuned)" if self.tuned else self.model

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

    @property
    def problems(self) -> list[dict]:
        """Failed and missing cells, one entry a seed."""
        out = []
        for row in self.rows:
            out += [{"row": row, "seed": s, "run": r, "status": r.status, "error": r.tags.get("error", "")}
                    for s, r in sorted(row.failed.items())]
            out += [{"row": row, "seed": s, "run": None, "status": "MISSING", "error": "planned, never run"}
                    for s in row.missing]
        return out


FORMATS = {"acc": ".3f", "mse": ".3g", "ratio": ".3f", "count": ",.0f", "rate": ",.0f"}


def fmt(value: float, kind: str) -> str:
    return format(value, FORMATS[kind])


def _cell(values: list[float], kind: str, spread: bool = True) -> dict:
    found = mean_std(values)
    if found is None:
        return {"text": "–", "mean": None, "std": None, "best": False}
    mean, std, _ = found
    text = fmt(mean, kind) if std is None or not spread else f"{fmt(mean, kind)} ± {fmt(std, kind)}"
    return {"text": text, "mean": mean, "std": std, "best": False}


def boards(cells: list[Run], planned: set | None, references: list[dict]) -> list[Board]:
    """One leaderboard a setting, a row a model (and its tuned variant), best value per column marked."""
    from suite.models import MODELS
    from tasks import TASKS
    from tasks.base import OUTPUT_KINDS

    latest, rows = {}, {}
    for run in cells:  # oldest first: the newest finished run of a cell wins, else its newest run
        key = (setting_of(run), run.tags["model"], run.tags.get("tuned") == "true", int(run.tags["seed"]))
        if run.status == "FINISHED" or latest.get(key, run).status != "FINISHED":
            latest[key] = run
    for (setting, model, tuned, seed), run in latest.items():
        row = rows.setdefault((setting, model, tuned), Row(model, tuned))
        (row.runs if run.status == "FINISHED" else row.failed)[seed] = run
    have = {(m, s, seed) for (s, m, _, seed) in latest}
    for model, setting, seed in sorted(planned or (), key=lambda c: (c[1].task, c[1].seq_len, c[1].variant, *c[::2])):
        if (model, setting, seed) not in have:
            rows.setdefault((setting, model, False), Row(model, False)).missing.append(seed)
    task_order, model_order = list(TASKS), list(MODELS)
    def rank(name, order):
        return order.index(name) if name in order else len(order)

    def by_setting(s):
        return rank(s.task, task_order), s.task, s.seq_len, s.variant

    out = []
    for setting in sorted({s for s, _, _ in rows}, key=by_setting):
        mine = sorted((r for (s, _, _), r in rows.items() if s == setting),
                      key=lambda r: (rank(r.model, model_order), r.model, r.tuned))
        metric = OUTPUT_KINDS[TASKS[setting.task].output_kind].metric if setting.task in TASKS \
            else next((r.group.metric for r in mine if r.group.metric), "acc")
        board = Board(setting, mine, metric, [], [])
        _score(board)
        _attach_references(board, references)
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
        row.cells["solved"] = {"text": f"{solved[0]}/{solved[1]}" if solved else "–", "mean": None, "best": False}
    for key, _, kind, better in columns:  # best as shown: rows equal at the shown precision tie
        means = [r.cells[key]["mean"] for r in board.rows if r.cells[key]["mean"] is not None]
        shown = {fmt(mean, kind): mean for mean in means}
        if better and len(shown) > 1:  # a tie across every row marks nothing
            best = fmt((max if better == "max" else min)(shown.values()), kind)
            for r in board.rows:
                r.cells[key]["best"] = r.cells[key]["mean"] is not None and fmt(r.cells[key]["mean"], kind) == best
    board.columns = [(k, h) for k, h, _, _ in columns[:2]]
    if any(r.group.solved for r in board.rows):
        board.columns.append(("solved", "solved"))
    board.columns += [(k, h) for k, h, _, _ in columns[2:]]


def load_references() -> list[dict]:
    return yaml.safe_load(REFERENCES.read_text())["figures"]


def _attach_references(board: Board, references: list[dict]):
    """Published figures for this task variant, each with its source, beside our row of the same model."""
    s = board.setting
    found = [f for f in references if f["task"] == s.task and f.get("variant", "") == s.variant
             and f["metric"] == f"test_{board.metric}" and f.get("seq_len", s.seq_len) == s.seq_len]
    sources = list(dict.fromkeys(f["source"] for f in found))
    board.references = [{**f, "n": sources.index(f["source"]) + 1, "text": fmt(f["value"], board.metric)}
                        for f in found]
    for row in board.rows:
        row.reference = next((f for f in board.references if f["model"] == row.model and not row.tuned), None)


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
    w.writerow(["task", "seq_len", "variant", "model", "tuned", "n", "n_failed", "n_missing", "metric", "test_mean",
                "test_std", "test_vs_chance_mean", "test_vs_chance_std", "solved", "n_params",
                "train_samples_per_s_mean", "train_samples_per_s_std", "run_ids"])
    num = lambda v: "" if v is None else repr(v)  # noqa: E731
    for b in all_boards:
        for r in b.rows:
            c = r.cells
            w.writerow([b.setting.task, b.setting.seq_len, b.setting.variant, r.model, str(r.tuned).lower(),
                        len(r.runs), len(r.failed), len(r.missing), b.metric or "", num(c["test_metric"]["mean"]),
                        num(c["test_metric"]["std"]),
                        num(c["test_vs_chance"]["mean"]), num(c["test_vs_chance"]["std"]),
                        c["solved"]["text"].replace("–", ""), num(c["n_params"]["mean"]),
                        num(c["train_samples_per_s"]["mean"]), num(c["train_samples_per_s"]["std"]),
                        " ".join(run.id for _, run in sorted(r.runs.items()))])
    path.write_text(out.getvalue())
