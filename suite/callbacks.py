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
    """Samples/s over training steps only: each epoch's first step (and the warm-up) left out.

    The clock runs from the end of the first counted-out step to the end of the epoch's last step,
    synchronising the GPU at those two points only, never per step.
    """

    def __init__(self, warmup_steps: int = 5):
        self.warmup = max(1, warmup_steps)
        self.samples, self.seconds, self.epoch_times = 0, 0.0, []
        self._window_start = self._epoch_start = None
        self._window_samples = 0

    def _now(self, pl_module):
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module):
        self._epoch_start, self._window_start, self._window_samples = time.perf_counter(), None, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        skip = self.warmup if trainer.current_epoch == 0 else 1
        if batch_idx + 1 == skip:
            self._window_start = self._now(pl_module)
        elif batch_idx + 1 > skip:
            self._window_samples += len(batch[0])
            if batch_idx + 1 == trainer.num_training_batches:
                self.seconds += self._now(pl_module) - self._window_start
                self.samples += self._window_samples

    def on_train_epoch_end(self, trainer, pl_module):
        self.epoch_times.append(time.perf_counter() - self._epoch_start)

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds else float("nan")
