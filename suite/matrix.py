"""A matrix of cells: finished ones skipped, stopped ones resumed, claimed against other workers, trained one at
a time or packed side by side (suite/packing.py), with a progress line a cell and an ETA weighted by cost."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from suite.config import Cell
from suite.errors import UserError, stop_if_interrupted
from suite.packing import planned_steps
from suite.runner import Outcome
from suite.tracking import Store


@dataclass(frozen=True)
class Settings:
    """How each cell of a matrix runs (the same in every worker process)."""

    profile: str
    force: bool = False
    role: str = "cell"
    tags: dict = field(default_factory=dict)  # a cell's config_hash -> extra tags for its run
    reuse_stale: bool = False


def run_matrix(store: Store, cells: list[Cell], profile: str, force: bool = False, role: str = "cell",
               progress: bool | None = None, tags: dict[str, dict] | None = None,
               reuse_stale: bool = False, packing=None) -> list[Outcome]:
    """Every cell; finished cells (same config_hash and code_fingerprint) are skipped unless forced.

    A cell finished with other code (the model's, the task's or the training core's files changed since) runs
    again, unless `reuse_stale` keeps the old result knowingly.

    Safe with other workers on the same store (overlapping shards, requeued jobs): stale runs are
    marked KILLED first, the store is checked again before each cell, a cell another live worker
    is training is left to it, and a stopped run with a checkpoint is resumed rather than restarted.
    `packing` (suite.packing.Packing) trains that many cells at once, costliest first.
    Outcomes come back in the order of `cells`.
    """
    from suite.cluster import reap_stale_runs
    from suite.tracking import finished_runs, our_experiments, result_of

    tty = sys.stderr.isatty() if progress is None else progress
    settings = Settings(profile, force, role, tags or {}, reuse_stale)
    reap_stale_runs(store.client, our_experiments(store))
    done = {} if force else finished_runs(store)
    outcomes: dict[int, Outcome] = {}
    todo = []
    jobs = packing.jobs if packing is not None else 1
    with Progress(cells, jobs, tty) as show:
        for i, cell in enumerate(cells):
            found, older = (None, None) if force else result_of(done, cell)
            if found is None and older is not None and reuse_stale:
                found = older
            if found is None:
                todo.append(i)
                continue
            outcomes[i] = Outcome(cell, "SKIPPED", found.info.run_id, dict(found.data.metrics))
            show.finish(cell, _skip_note(found, cell), None)
        if jobs > 1 and len(todo) > 1:
            from suite.packing import packed

            for i, outcome, note, seconds in packed(store, [(i, cells[i]) for i in todo], settings, packing, show,
                                                       matrix_cell, cost):
                outcomes[i] = outcome
                show.finish(cells[i], note, seconds)
        else:
            for i in todo:
                stop_if_interrupted()
                show.start(cells[i])
                started = time.perf_counter()
                outcomes[i], note = matrix_cell(store, cells[i], settings, tty)
                show.finish(cells[i], note, time.perf_counter() - started if outcomes[i].status != "SKIPPED" else None)
    return [outcomes[i] for i in range(len(cells))]


def matrix_cell(store: Store, cell: Cell, s: Settings, progress: bool = False) -> tuple[Outcome, str]:
    """One cell of a matrix: skipped if another worker finished it meanwhile, else resumed or trained."""
    from suite.runner import run_cell
    from suite.tracking import finished_runs, result_of

    found, older = (None, None)
    if not s.force:  # another worker may have finished it meanwhile
        found, older = result_of(_guarded(store, cell, lambda: finished_runs(store, [cell.config_hash])), cell)
    if found is None and older is not None and s.reuse_stale:
        found, older = older, None
    if found is not None:
        return Outcome(cell, "SKIPPED", found.info.run_id, dict(found.data.metrics)), _skip_note(found, cell)
    resume = None if s.force else _guarded(store, cell, lambda: resumable(store, cell))
    outcome = _guarded(store, cell, lambda: run_cell(store, cell, s.profile, s.role, progress,
                                                     s.tags.get(cell.config_hash), resume=resume,
                                                     exclusive=not s.force))
    note = f"left to another worker: {outcome.error}" if outcome.status == "SKIPPED" else _headline(outcome)
    if resume is not None:
        note += f" (resumed run {resume.info.run_id} from epoch {resume.data.tags['checkpoint_epoch']})"
    if older is not None:
        note += f" (its code changed since run {older.info.run_id}: trained again)"
    return outcome, note


def _skip_note(found, cell) -> str:
    return ("already finished, skipped (--force reruns)" if found.data.tags.get("code_fingerprint") ==
            cell.code_fingerprint else "kept from older code (--reuse-stale)")


def resumable(store: Store, cell: Cell):
    """The newest KILLED run of the cell, same code, with a checkpoint (a preempted, interrupted or stale one)."""
    runs = store.client.search_runs([store.experiment_id], f"tags.config_hash = '{cell.config_hash}' and "
                                    f"tags.code_fingerprint = '{cell.code_fingerprint}' and "
                                    "attributes.status = 'KILLED' and tags.checkpoint_epoch != ''",
                                    max_results=1, order_by=["attributes.start_time DESC"])
    runs = [r for r in runs if "duplicate" not in r.data.tags]
    return runs[0] if runs else None


def _guarded(store: Store, cell: Cell, run):
    """run(); if it fails because the tracking store is gone, stop the matrix with one clear line."""
    from suite.stores import reachable, redact

    try:
        return run()
    except (UserError, KeyboardInterrupt):
        raise
    except Exception as e:
        if reachable(store.uri):
            raise
        raise UserError(f"tracking store {redact(store.uri)} lost during {cell.label} ({type(e).__name__}, after "
                        "MLflow's retries); finished cells are kept: rerun the same command when it is back to "
                        "finish the rest") from None


def _headline(o: Outcome) -> str:
    if o.status == "FAILED":
        return f"FAILED ({o.error})"
    m = o.metrics
    score = f"test_acc {m['test_acc']:.3f}" if "test_acc" in m else f"test_mse {m.get('test_mse', float('nan')):.4f}"
    return f"{score}, test_loss {m['test_loss']:.4f}, {m['train_samples_per_s']:.0f} samples/s"


def cost(cell: Cell) -> float:
    """A cell's relative work: examples trained on plus those evaluated (at ~1/3 the price), times input steps."""
    if cell.config_hash not in _COSTS:
        task = cell.make_task()
        evaluated = cell.train.n_val * cell.train.epochs + cell.train.n_test
        _COSTS[cell.config_hash] = (planned_steps(cell, task) * cell.train.batch_size + evaluated / 3) * \
            task.input_steps
    return _COSTS[cell.config_hash]


_COSTS: dict[str, float] = {}


class Clock:
    """Seconds a unit of cost, learnt from the cells trained so far (per model once one of its cells has
    finished, since models differ in price), applied to the work left and spread over the jobs."""

    def __init__(self, jobs: int):
        self.jobs, self.seconds, self.units = jobs, {}, {}

    def record(self, cell: Cell, seconds: float):
        self.seconds[cell.model] = self.seconds.get(cell.model, 0.0) + seconds
        self.units[cell.model] = self.units.get(cell.model, 0.0) + cost(cell)

    def rate(self, model: str) -> float | None:
        if model in self.units:
            return self.seconds[model] / self.units[model]
        total = sum(self.units.values())
        return sum(self.seconds.values()) / total if total else None

    def eta(self, waiting: list[Cell], running: dict[str, tuple[Cell, float]]) -> float | None:
        """Seconds until the last cell ends; None before any cell has trained (nothing measured yet)."""
        if not self.units:
            return None
        now = time.perf_counter()
        left = sum(cost(c) * self.rate(c.model) for c in waiting)
        left += sum(max(cost(c) * self.rate(c.model) - (now - t), 0.0) for c, t in running.values())
        return left / min(self.jobs, max(len(waiting) + len(running), 1))


class Progress:
    """One line a finished cell, `[i/N] cell: result (elapsed, eta)`, and a bar naming the cells running."""

    def __init__(self, cells: list[Cell], jobs: int, tty: bool):
        self.cells, self.jobs, self.tty = cells, jobs, tty
        self.waiting = {c.label: c for c in cells}
        self.running: dict[str, tuple[Cell, float]] = {}
        self.clock, self.count, self.started = Clock(jobs), 0, time.perf_counter()

    def __enter__(self):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=len(self.cells), desc="matrix", unit="cell", disable=not self.tty, dynamic_ncols=True)
        return self

    def __exit__(self, *exc):
        self.bar.close()

    def start(self, cell: Cell, job: int | None = None):
        self.waiting.pop(cell.label, None)
        self.running[cell.label] = (cell, time.perf_counter())
        self.bar.set_postfix_str(" | ".join(self.running))
        if job is not None and not self.tty:  # a log file: say what each job took on
            print(f"  job {job}: {cell.label}", flush=True)

    def finish(self, cell: Cell, note: str, seconds: float | None):
        """`seconds`: how long it trained (None: skipped, which teaches the clock nothing)."""
        self.waiting.pop(cell.label, None)
        self.running.pop(cell.label, None)
        if seconds is not None:
            self.clock.record(cell, seconds)
        self.count += 1
        self.bar.update()
        self.bar.set_postfix_str(" | ".join(self.running))
        eta = self.clock.eta(list(self.waiting.values()), self.running)
        line = (f"[{self.count}/{len(self.cells)}] {cell.label}: {note}  (elapsed "
                f"{clock(time.perf_counter() - self.started)}, eta {'?' if eta is None else clock(eta)})")
        self.bar.write(line) if self.tty else print(line, flush=True)


def clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"
