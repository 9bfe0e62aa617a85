"""The report's tables: what a reader must know first (banners), what was run (facts), and leaderboard.csv, all
formatted from the scores (suite/scoring.py)."""
from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from suite.scoring import Board, Row

SETTINGS = (("train.epochs", "epochs"), ("train.steps_per_epoch", "steps/epoch"), ("train.batch_size", "batch"),
            ("train.lr", "lr"), ("model.hidden_size", "hidden"), ("model.num_layers", "layers"),
            ("model.init", "init"), ("model.nonlinearity", "nonlinearity"))  # shown beside each row, from params

def banners(boards: list[Board]) -> list[str]:
    """What a reader must know before reading any number (a plumbing check, a small budget): the `banner:` of
    each profile the runs shown come from."""
    from suite.experiment import profile_banner

    profiles = {r.tags.get("profile") for b in boards for row in b.rows for r in row.runs.values()}
    return [text for p in sorted(p for p in profiles if p) if (text := profile_banner(p))]


def _values(runs, key: str, generated: bool = True) -> str:
    """The distinct values of a param (or tag) over the runs; an unset steps_per_epoch says what it means."""
    def shown(r):
        value = str(r.params.get(key, r.tags.get(key, "")))
        if key == "train.steps_per_epoch" and value == "None":
            return "100 (default)" if generated else "full pass"
        return value

    return ", ".join(dict.fromkeys(shown(r) for r in runs)) or "–"


def annotate(board: Board):
    """The board's context as the pages show it: the data, profile and budget of the runs shown, each row's own
    hyperparameters and init, and the seeds this checkout's code would train again."""
    from tasks import TASKS
    from tasks.base import SyntheticTask

    runs = [r for row in board.rows for r in row.runs.values()]
    if not runs or not any(r.params for r in runs):
        return
    board.would_rerun = _would_rerun(board)
    task = TASKS.get(board.setting.task)
    generated = task is None or issubclass(task, SyntheticTask)
    data = ", ".join(sorted({r.tags.get("data_source", "?") for r in runs}))
    board.context = (f"data {data} · profile {_values(runs, 'profile')} · {_values(runs, 'train.epochs')} epochs"
                     + (f" × {_values(runs, 'train.steps_per_epoch', generated)} steps" if any(
                         r.params.get("train.steps_per_epoch") not in (None, "None") for r in runs) else ""))
    for row in board.rows:
        mine = list(row.runs.values())
        row.settings = {label: _values(mine, key, generated) for key, label in SETTINGS
                        if mine and any(key in r.params for r in mine)}


def _would_rerun(board: Board) -> list[str]:
    """The seeds whose run's code differs from this checkout's: a benchmark would train them again."""
    from suite.fingerprint import code_fingerprint
    from suite.models import MODELS
    from tasks import TASKS

    s, out = board.setting, []
    for row in board.rows:
        if row.model not in MODELS or s.task not in TASKS or not any(r.params for r in row.runs.values()):
            continue
        today = code_fingerprint(row.model, s.task)
        out += [f"{row.label} seed {seed}" for seed, r in sorted(row.runs.items())
                if r.tags.get("code_fingerprint", "") != today]
    return out


def _counted(runs, key: str) -> str:
    """The distinct values of a tag over runs, with how many runs have each when they differ."""
    count = Counter(r.tags[key] for r in runs if r.tags.get(key))
    if len(count) <= 1:
        return next(iter(count), "–")
    return ", ".join(f"{v} ({n} runs)" for v, n in sorted(count.items()))


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def facts(all_boards: list[Board], experiments: list, planned: set | None) -> list[tuple[str, str]]:
    """What was run, from the runs the leaderboards show: profile, tasks, models, seeds, device, versions, git sha."""
    rows = [row for b in all_boards for row in b.rows]
    shown = [r for row in rows for r in (*row.runs.values(), *row.failed.values())]

    def data(b):
        return _counted([r for row in b.rows for r in (*row.runs.values(), *row.failed.values())], "data_source")

    finished, failed, later, missing = (sum(len(getattr(row, k)) for row in rows) for k in ("runs", "failed", "later",
                                                                                          "missing"))
    starts = sorted(r.start for r in shown if r.start)
    out = [("experiments", ", ".join(f"{e.name} (id {e.experiment_id})" for e in experiments)),
           ("profile", _counted(shown, "profile")),
           ("tasks", ", ".join(f"{b.setting.label} ({data(b)})" for b in all_boards) or "–"),
           ("models", ", ".join(dict.fromkeys(row.model for row in rows)) or "–"),
           ("seeds", ", ".join(map(str, sorted({s for row in rows for s in (*row.runs, *row.failed, *row.missing)})))
            or "–"),
           ("cells", f"{finished} finished, {failed + later} failed or stopped, {missing} missing"
                     + (f" ({later} of the failures after an earlier run of the cell finished, which is shown)"
                        if later else "")
                     + ("" if planned is not None or not rows else " (no benchmark logged its plan here)")),
           *((label, _counted(shown, key)) for label, key in (
               ("device", "device"), ("CPU", "cpu"), ("GPU", "gpu"), ("precision", "precision"),
               ("computed in", "compute_dtypes"), ("torch", "torch_version"), ("Python", "python_version"),
               ("CUDA", "cuda_version"), ("git sha", "git_sha")))]
    if starts:
        out.append(("runs started", f"{_day(starts[0])} to {_day(starts[-1])}"))
    return [(k, v) for k, v in out if v != "–" or k in ("experiments", "profile")]


def _num(value) -> str:
    return "" if value is None else repr(value)


def _mark(row: Row) -> str:
    return {"best": "best", "tied": "tied for best"}.get(row.stats["test_metric"].mark, "")


# leaderboard.csv: (header, value of a board's row), declared together so they cannot drift apart.
CSV = (("task", lambda b, r: b.setting.task), ("seq_len", lambda b, r: b.setting.seq_len),
       ("variant", lambda b, r: b.setting.variant), ("model", lambda b, r: r.model), ("init", lambda b, r: r.init),
       ("tuned", lambda b, r: str(r.tuned).lower()), ("recipe", lambda b, r: r.recipe), ("n", lambda b, r: len(r.runs)),
       ("n_failed", lambda b, r: len(r.failed)), ("n_missing", lambda b, r: len(r.missing)),
       ("metric", lambda b, r: b.metric), ("test_mean", lambda b, r: _num(r.stats["test_metric"].mean)),
       ("test_std", lambda b, r: _num(r.stats["test_metric"].std)),
       ("test_ci95_low", lambda b, r: _num((r.stats["test_metric"].ci or (None, None))[0])),
       ("test_ci95_high", lambda b, r: _num((r.stats["test_metric"].ci or (None, None))[1])),
       ("verdict", lambda b, r: _mark(r)),
       ("test_vs_chance_mean", lambda b, r: _num(r.stats["test_vs_chance"].mean)),
       ("test_vs_chance_std", lambda b, r: _num(r.stats["test_vs_chance"].std)),
       ("solved", lambda b, r: f"{r.solved[0]}/{r.solved[1]}" if r.solved else ""),
       ("n_params", lambda b, r: _num(r.stats["n_params"].mean)),
       ("data_source", lambda b, r: ", ".join(sorted({run.tags.get("data_source", "") for run in r.runs.values()}))),
       ("profile", lambda b, r: ", ".join(dict.fromkeys(run.tags.get("profile", "") for run in r.runs.values()))),
       *((name, lambda b, r, label=label: r.settings.get(label, "")) for name, label in (
           ("epochs", "epochs"), ("steps_per_epoch", "steps/epoch"), ("batch_size", "batch"), ("lr", "lr"),
           ("hidden_size", "hidden"), ("num_layers", "layers"))),
       ("train_samples_per_s_mean", lambda b, r: _num(r.stats["train_samples_per_s"].mean)),
       ("train_samples_per_s_std", lambda b, r: _num(r.stats["train_samples_per_s"].std)),
       ("run_ids", lambda b, r: " ".join(run.id for _, run in sorted(r.runs.items()))))


def write_csv(path: Path, all_boards: list[Board]):
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow([header for header, _ in CSV])
    for b in all_boards:
        for r in b.rows:
            w.writerow([value(b, r) for _, value in CSV])
    path.write_text(out.getvalue())
