"""How long cells take: the ETA clock a matrix's progress line uses (cost-weighted, learnt as cells finish), and
the dry run's calibration (a setting timed briefly on this machine) with the packed wall time it implies.

A setting (model x task x T) is timed the way its cells will run (the packing's thread count): building its data
and model, a few training calls after the warm-up and one validation pass. A cell's estimate is setup + steps x
step time + (epochs + test) x validation time (saving the model takes hundredths); the packed wall time is the
longest job when cells go costliest first to the job that frees up first. No MLflow here: the GPU check uses it
on a bare machine.
"""
from __future__ import annotations

import dataclasses
import time

from suite.config import Cell


class Clock:
    """Seconds per unit of cost, learnt from the cells trained so far (per model once one of its cells has
    finished, since models differ in price), applied to the work left and spread over the jobs."""

    def __init__(self, jobs: int):
        self.jobs, self.seconds, self.units = jobs, {}, {}

    def record(self, cell: Cell, seconds: float):
        self.seconds[cell.model] = self.seconds.get(cell.model, 0.0) + seconds
        self.units[cell.model] = self.units.get(cell.model, 0.0) + cell.cost

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
        left = sum(c.cost * self.rate(c.model) for c in waiting)
        left += sum(max(c.cost * self.rate(c.model) - (now - t), 0.0) for c, t in running.values())
        return left / min(self.jobs, max(len(waiting) + len(running), 1))


def estimate(cell: Cell, threads: int) -> float:
    """Seconds the cell takes here, from timing a short piece of it with `threads` torch threads. Saving the
    model at the end is left out: a pickle with its code, a few hundredths of a second."""
    import torch

    from suite.train import Training, trainer_for  # Lightning: only when a cell is timed (the clock needs none)

    torch.set_num_threads(threads)
    calls = 2  # timed training calls after the warm-up
    warm = -(-cell.train.warmup_steps // cell.train.steps_per_call)
    short = dataclasses.replace(cell, train=dataclasses.replace(
        cell.train, epochs=1, steps_per_epoch=(warm + calls) * cell.train.steps_per_call, gradflow=False))
    started = time.perf_counter()
    training = Training(short)
    setup = time.perf_counter() - started
    trainer = trainer_for(short, training.device, [training.speed], False, limit_val_batches=1)
    trainer.fit(training.module, training.train_batches)
    step = cell.train.batch_size / training.speed.samples_per_s
    started = time.perf_counter()
    trainer.validate(training.module, training.val_batches, verbose=False)  # one batch: a pass is len(val) of them
    val = (time.perf_counter() - started) * len(training.val_batches)
    test = val * len(training.test_batches) / max(len(training.val_batches), 1)
    return setup + cell.planned_steps * step + cell.train.epochs * val + test


def makespan(seconds: list[float], jobs: int) -> float:
    """Wall time when the costliest cell goes first to whichever job frees up first."""
    ends = [0.0] * jobs
    for s in sorted(seconds, reverse=True):
        ends[ends.index(min(ends))] += s
    return max(ends)


def hms(seconds: float) -> str:
    """Seconds as h:mm:ss (m:ss under an hour)."""
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"
