"""Two lean callbacks: epoch metrics to MLflow in one batch, and training throughput."""
from __future__ import annotations

import time

import lightning.pytorch as pl
import torch


class MlflowEpochMetrics(pl.Callback):
    """Logs the epoch's train/val metrics and elapsed time to the run with one log_batch call."""

    def __init__(self, run_id: str):
        from mlflow import MlflowClient

        self.client, self.run_id, self.start = MlflowClient(), run_id, time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), trainer.current_epoch
        values = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("train_", "val_"))}
        values["elapsed_s"] = time.perf_counter() - self.start
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])


class TrainSpeed(pl.Callback):
    """Samples/s over training steps only: validation and the first `warmup_calls` calls left out.

    A call is one training_step (a group of batches). In the first epoch the clock starts after the
    warm-up calls, in later ones at the epoch's start; it stops after the epoch's last call. The GPU
    is synchronised at those two points only, never per step.
    """

    def __init__(self, warmup_calls: int = 1):
        self.warmup = warmup_calls
        self.samples, self.seconds, self.epoch_times, self.epochs_started = 0, 0.0, [], 0
        self._window_start = self._epoch_start = None
        self._window_samples = 0

    def _now(self, pl_module):
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module):
        self.epochs_started += 1
        self._epoch_start, self._window_samples = time.perf_counter(), 0
        warm = trainer.current_epoch == 0 and self.warmup > 0
        self._window_start = None if warm else self._now(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self._window_start is None:
            if batch_idx + 1 == self.warmup:
                self._window_start = self._now(pl_module)
            return
        self._window_samples += sum(len(x) for x, _ in batch)
        if batch_idx + 1 == trainer.num_training_batches:
            self.seconds += self._now(pl_module) - self._window_start
            self.samples += self._window_samples

    def on_train_epoch_end(self, trainer, pl_module):
        self.epoch_times.append(time.perf_counter() - self._epoch_start)

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds else float("nan")


class SolveWatch(pl.Callback):
    """Notes the first validation that meets the task's solve rule, and stops once solved `patience` in a row."""

    def __init__(self, task, patience: int):
        self.task, self.patience = task, patience
        self.steps_to_solve = self.time_to_solve_s = None
        self.streak, self.start = 0, time.perf_counter()

    def on_train_start(self, trainer, pl_module):
        self.start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module):
        value = trainer.callback_metrics.get(f"val_{pl_module.metric}")
        solved = value is not None and self.task.is_solved(float(value))
        if solved and self.steps_to_solve is None:
            self.steps_to_solve, self.time_to_solve_s = pl_module.steps_done, time.perf_counter() - self.start
        self.streak = self.streak + 1 if solved else 0
        if self.patience and self.streak >= self.patience:
            trainer.should_stop = True

    def metrics(self) -> dict:
        if self.steps_to_solve is None:
            return {}
        return {"steps_to_solve": self.steps_to_solve, "time_to_solve_s": self.time_to_solve_s}
