"""A matrix of cells: finished ones skipped, stopped ones resumed, claimed against other workers, trained one at
a time or packed side by side (suite/packing.py), with a progress line per cell and an ETA weighted by cost."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Literal

from suite.cluster import reap_stale_runs
from suite.config import Cell
from suite.errors import UserError
from suite.eta import Clock, hms
from suite.packing import Packing, run_packed
from suite.roles import Role
from suite.runner import Outcome, RunOptions, run_cell
from suite.signals import stop_if_interrupted
from suite.stores import reachable, redact
from suite.tracking import Store, finished_runs, our_experiments, stopped_runs


@dataclass(frozen=True)
class Settings:
    """How each cell of a matrix runs (the same in every worker process)."""

    profile: str
    force: bool = False  # train again cells that finished
    role: Role = Role.CELL
    tags: dict = field(default_factory=dict)  # a cell's config_hash -> extra tags for its run
    reuse_stale: bool = False  # keep a result whose code has changed since, knowingly
    packing: Packing | None = None  # cells trained at once (None: one at a time)
    progress: bool | None = None  # progress bars (None: when stderr is a terminal)
    tested: bool = True  # False: runs are validated only (a recipe search's)
    keep_final: bool = False  # each run keeps its trained state for another to carry on from
    warm: dict = field(default_factory=dict)  # a cell's config_hash -> (the run it carries on from, that run's epochs)
    names: dict = field(default_factory=dict)  # a cell's config_hash -> its name in progress lines (else its label)
    later: tuple = ()  # cells a later matrix of the same command trains (the ETA counts them)

    def name(self, cell: Cell) -> str:
        return self.names.get(cell.config_hash, cell.label)

    def work(self, cell: Cell) -> float:
        """The cell's cost left to train: a cell carried on from another run trains only its last epochs."""
        _, done = self.warm.get(cell.config_hash, (None, 0))
        return cell.cost * max(1 - done / cell.train.epochs, 0.0)


@dataclass(frozen=True)
class CellState:
    """What happens to a cell, and the run it refers to: the one that finished it ("finished", or "kept" from
    older code with --reuse-stale), the stopped one it carries on from ("resume"), or none ("train")."""

    action: Literal["finished", "kept", "resume", "train"]
    run: object = None
    older: object = None  # a finished run of the cell with other code, trained again (None: there is none)

    @property
    def done(self) -> bool:
        return self.action in ("finished", "kept")

    def note(self) -> str:
        """The state as the dry run lists it."""
        if self.action == "finished":
            return f"finished (run {self.run.info.run_id[:8]})"
        if self.action == "kept":
            return f"kept (older code, {self.run.info.run_id[:8]})"
        if self.action == "resume":
            return f"resume from epoch {self.run.data.tags['checkpoint_epoch']}"
        return "to train" + (" (code changed)" if self.older is not None else "")


def cell_state(cell: Cell, finished: dict, stopped: dict | None = None, force: bool = False,
               reuse_stale: bool = False) -> CellState:
    """The one decision about a cell, from the store's finished and stopped runs (tracking.finished_runs and
    stopped_runs; `stopped` None: not looked up, so a cell to train may still resume)."""
    if force:
        return CellState("train")
    key = (cell.config_hash, cell.code_fingerprint)
    older = [r for (h, fp), r in finished.items() if h == cell.config_hash and fp != cell.code_fingerprint]
    older = max(older, key=lambda r: r.info.start_time) if older else None
    if key in finished:
        return CellState("finished", finished[key])
    if older is not None and reuse_stale:
        return CellState("kept", older)
    if stopped and key in stopped:
        return CellState("resume", stopped[key], older)
    return CellState("train", None, older)


def run_matrix(store: Store, cells: list[Cell], settings: Settings) -> list[Outcome]:
    """Every cell; finished cells (same config_hash and code_fingerprint) are skipped unless forced.

    A cell finished with other code (the model's, the task's or the training core's files changed since) runs
    again, unless `reuse_stale` keeps the old result knowingly.

    Safe with other workers on the same store (overlapping shards, requeued jobs): stale runs are
    marked KILLED first, the store is checked again before each cell, a cell another live worker
    is training is left to it, and a stopped run with a checkpoint is resumed rather than restarted.
    Packed cells go costliest first. Outcomes come back in the order of `cells`.
    """
    s = settings
    tty = sys.stderr.isatty() if s.progress is None else s.progress
    reap_stale_runs(store.client, our_experiments(store))
    finished = {} if s.force else finished_runs(store, [c.config_hash for c in cells])
    outcomes: dict[int, Outcome] = {}
    todo = []
    jobs = s.packing.jobs if s.packing is not None else 1
    with Progress(cells, jobs, tty, s) as show:
        for i, cell in enumerate(cells):
            state = cell_state(cell, finished, None, s.force, s.reuse_stale)
            if not state.done:
                todo.append(i)
                continue
            outcomes[i] = _skipped(cell, state, s)
            show.finish(cell, _skip_note(state), None)
        if jobs > 1 and len(todo) > 1:
            for i, outcome, note, seconds in run_packed(store, [(i, cells[i]) for i in todo], s, show, matrix_cell):
                outcomes[i] = outcome
                show.finish(cells[i], note, seconds)
        else:
            for i in todo:
                stop_if_interrupted()
                show.start(cells[i])
                started = time.perf_counter()
                outcomes[i], note = matrix_cell(store, cells[i], s, tty)
                show.finish(cells[i], note, time.perf_counter() - started if outcomes[i].status != "SKIPPED" else None)
    return [outcomes[i] for i in range(len(cells))]


def matrix_cell(store: Store, cell: Cell, s: Settings, progress: bool = False) -> tuple[Outcome, str]:
    """One cell of a matrix: skipped if another worker finished it meanwhile, else resumed or trained."""
    hashes = [cell.config_hash]
    state = CellState("train") if s.force else _guarded(store, cell, lambda: cell_state(
        cell, finished_runs(store, hashes), stopped_runs(store, hashes), s.force, s.reuse_stale))
    if state.done:
        return _skipped(cell, state, s), _skip_note(state)
    resume = state.run if state.action == "resume" else None
    options = RunOptions(s.role, s.tags.get(cell.config_hash, {}), resume=resume, exclusive=not s.force,
                         progress=progress, tested=s.tested, keep_final=s.keep_final,
                         warm_start=s.warm.get(cell.config_hash, (None,))[0])
    outcome = _guarded(store, cell, lambda: run_cell(store, cell, s.profile, options))
    note = f"left to another worker: {outcome.error}" if outcome.status == "SKIPPED" else _headline(outcome)
    if resume is not None:
        note += f" (resumed run {resume.info.run_id} from epoch {resume.data.tags['checkpoint_epoch']})"
    if state.older is not None:
        note += f" (its code changed since run {state.older.info.run_id}: trained again)"
    return outcome, note


def _skipped(cell: Cell, state: CellState, s: Settings) -> Outcome:
    return Outcome(cell, "SKIPPED", state.run.info.run_id, dict(state.run.data.metrics),
                   tags=s.tags.get(cell.config_hash, {}))


def _skip_note(state: CellState) -> str:
    return "already finished, skipped (--force reruns)" if state.action == "finished" else \
        "kept from older code (--reuse-stale)"


def _guarded(store: Store, cell: Cell, call):
    """call(); if it fails because the tracking store is gone, stop the matrix with one clear line."""
    try:
        return call()
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
    if "test_loss" not in m:  # validated only
        return f"val_loss {m.get('val_loss', float('nan')):.4f}, {m.get('train_samples_per_s', float('nan')):.0f} " \
            "samples/s"
    score = f"test_acc {m['test_acc']:.3f}" if "test_acc" in m else f"test_mse {m.get('test_mse', float('nan')):.4f}"
    return f"{score}, test_loss {m['test_loss']:.4f}, {m['train_samples_per_s']:.0f} samples/s"


class Progress:
    """One line per finished cell, `[i/N] cell: result (elapsed, eta)`, and a bar naming the cells running."""

    def __init__(self, cells: list[Cell], jobs: int, tty: bool, settings: Settings):
        self.cells, self.jobs, self.tty, self.s = cells, jobs, tty, settings
        self.waiting = {id(c): c for c in cells}
        self.running: dict[int, tuple[Cell, float]] = {}
        self.clock, self.count, self.started = Clock(jobs, settings.work), 0, time.perf_counter()

    def __enter__(self):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=len(self.cells), desc="matrix", unit="cell", disable=not self.tty, dynamic_ncols=True)
        return self

    def __exit__(self, *exc):
        self.bar.close()

    def _names(self) -> str:
        return " | ".join(self.s.name(c) for c, _ in self.running.values())

    def start(self, cell: Cell, job: int | None = None):
        self.waiting.pop(id(cell), None)
        self.running[id(cell)] = (cell, time.perf_counter())
        self.bar.set_postfix_str(self._names())
        if job is not None and not self.tty:  # a log file: say what each job took on
            print(f"  job {job}: {self.s.name(cell)}", flush=True)

    def finish(self, cell: Cell, note: str, seconds: float | None):
        """`seconds`: how long it trained (None: skipped, which teaches the clock nothing)."""
        self.waiting.pop(id(cell), None)
        self.running.pop(id(cell), None)
        if seconds is not None:
            self.clock.record(cell, seconds)
        self.count += 1
        self.bar.update()
        self.bar.set_postfix_str(self._names())
        eta = self.clock.eta([*self.waiting.values(), *self.s.later], self.running)
        line = (f"[{self.count}/{len(self.cells)}] {self.s.name(cell)}: {note}  (elapsed "
                f"{hms(time.perf_counter() - self.started)}, eta {'?' if eta is None else hms(eta)})")
        self.bar.write(line) if self.tty else print(line, flush=True)
