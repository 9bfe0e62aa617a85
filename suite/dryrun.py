"""`rnnbench benchmark --dry-run`: the cells, which are finished, and a time estimate from a short calibration
on the machine at hand; it writes nothing to the store.

Each setting (model x task x T) to train is timed once, the way its cells will run (the packing's thread count):
building its data and model, a few training calls after the warm-up and one validation pass. A cell's estimate
is setup + steps x step time + (epochs + test) x validation time (saving the model takes hundredths); the
packed wall time is the longest job when cells go costliest first to the job that frees up first.
"""
from __future__ import annotations

import dataclasses
import time

from suite.config import Cell
from suite.matrix import clock, planned_steps


def dry_run(cells: list[Cell], uri: str, experiment: str, pack, force: bool, reuse_stale: bool) -> int:
    """Print each cell's state and estimate, and the whole matrix's wall time with `pack` (None: one at a time)."""
    from suite.packing import Packing, cores
    from suite.train import init_torch

    init_torch()
    status = statuses(cells, uri, experiment, force, reuse_stale)
    todo = [c for c in cells if not status[c.label].startswith(("finished", "kept"))]
    pack = pack or Packing(1, cores())
    settings = {_setting(c): c for c in todo}
    print(f"calibrating {len(settings)} settings with {pack.threads} thread(s) each ...", flush=True)
    seconds = {key: estimate(cell, pack.threads) for key, cell in settings.items()}
    width = max((len(c.label) for c in cells), default=0)
    for cell in cells:
        est = seconds.get(_setting(cell))
        took = f"~{clock(est * _left(status[cell.label], cell))}" if cell in todo else ""
        print(f"  {cell.label:<{width}}  {status[cell.label]:<28} {took}")
    each = [seconds[_setting(c)] * _left(status[c.label], c) for c in todo]
    print(f"\n{len(cells)} cells: {len(cells) - len(todo)} finished, {len(todo)} to train · estimated "
          f"{clock(makespan(each, pack.jobs))} with {pack.jobs} job(s) at once ({clock(sum(each))} one at a time)"
          f"\nexperiment {experiment}; nothing was run or written (drop --dry-run to start)")
    return 0


def statuses(cells: list[Cell], uri: str, experiment: str, force: bool, reuse_stale: bool) -> dict[str, str]:
    """Each cell's state in the store, read only: finished, kept (older code), resumable, or to train."""
    from pathlib import Path

    from suite.stores import check_store, open_client
    from suite.tracking import Store, finished_runs, result_of

    fresh = {c.label: "to train" for c in cells}
    if force or (uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file()):
        return fresh

    from suite.matrix import resumable

    check_store(uri, read_only=True)
    client = open_client(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return fresh
    store = Store(uri, client, found.experiment_id, experiment)
    done, out = finished_runs(store), {}
    for cell in cells:
        current, older = result_of(done, cell)
        if current is not None:
            out[cell.label] = f"finished (run {current.info.run_id[:8]})"
        elif older is not None and reuse_stale:
            out[cell.label] = f"kept (older code, {older.info.run_id[:8]})"
        elif (stopped := resumable(store, cell)) is not None:
            out[cell.label] = f"resume from epoch {stopped.data.tags['checkpoint_epoch']}"
        else:
            out[cell.label] = "to train" + (" (code changed)" if older is not None else "")
    return out


def estimate(cell: Cell, threads: int) -> float:
    """Seconds the cell takes here, from timing a short piece of it with `threads` torch threads. Saving the
    model at the end is left out: a pickle with its code, a few hundredths of a second."""
    import torch

    from suite.train import Training, trainer_for

    torch.set_num_threads(threads)
    calls = 2  # timed training calls after the warm-up
    warm = -(-cell.train.warmup_steps // cell.train.steps_per_call)
    short = dataclasses.replace(cell, train=dataclasses.replace(
        cell.train, epochs=1, steps_per_epoch=(warm + calls) * cell.train.steps_per_call, gradflow=False))
    started = time.perf_counter()
    training = Training(short)
    setup = time.perf_counter() - started
    trainer = trainer_for(short, training.device, [training.speed], False, limit_val_batches=1)
    trainer.fit(training.module, training.train)
    step = cell.train.batch_size / training.speed.samples_per_s
    started = time.perf_counter()
    trainer.validate(training.module, training.val, verbose=False)  # one batch: a pass is len(val) of them
    val = (time.perf_counter() - started) * len(training.val)
    test = val * len(training.test) / max(len(training.val), 1)
    training_s = planned_steps(cell, training.task) * step + cell.train.epochs * val + test
    return setup + training_s


def makespan(seconds: list[float], jobs: int) -> float:
    """Wall time when the costliest cell goes first to whichever job frees up first."""
    ends = [0.0] * jobs
    for s in sorted(seconds, reverse=True):
        ends[ends.index(min(ends))] += s
    return max(ends)


def _setting(cell: Cell) -> str:
    return cell.label.rsplit(" · seed", 1)[0]


def _left(status: str, cell: Cell) -> float:
    """The share of a cell still to train (a resumed one carries on from its checkpoint's epoch)."""
    if status.startswith("resume from epoch "):
        return max(1 - int(status.split()[-1]) / cell.train.epochs, 0.0)
    return 1.0
