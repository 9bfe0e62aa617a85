"""Lean callbacks: epoch metrics to MLflow in one batch, throughput, solve watch, and checkpoints.

Each keeps its state in the checkpoint (state_dict), so a resumed run carries on where it stopped.
"""
from __future__ import annotations

import time

import lightning.pytorch as pl
import torch

from suite.signals import stop_if_interrupted


class MlflowEpochMetrics(pl.Callback):
    """Logs the epoch's train/val metrics and elapsed time to the run with one log_batch call."""

    def __init__(self, client, run_id: str):
        self.client, self.run_id, self.start = client, run_id, time.perf_counter()

    def state_dict(self):
        return {"elapsed_s": time.perf_counter() - self.start}

    def load_state_dict(self, state):
        self.start = time.perf_counter() - state["elapsed_s"]

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

    def state_dict(self):
        return {"samples": self.samples, "seconds": self.seconds, "epoch_times": list(self.epoch_times),
                "epochs_started": self.epochs_started}

    def load_state_dict(self, state):
        self.samples, self.seconds = state["samples"], state["seconds"]
        self.epoch_times, self.epochs_started = list(state["epoch_times"]), state["epochs_started"]

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
        stop_if_interrupted()  # a SIGTERM some library swallowed
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
        self.streak, self.start, self._elapsed = 0, time.perf_counter(), 0.0

    def on_train_start(self, trainer, pl_module):
        self.start = time.perf_counter() - self._elapsed  # a resumed run counts the time before it stopped

    def state_dict(self):
        return {"steps_to_solve": self.steps_to_solve, "time_to_solve_s": self.time_to_solve_s,
                "streak": self.streak, "elapsed_s": time.perf_counter() - self.start}

    def load_state_dict(self, state):
        self.steps_to_solve, self.time_to_solve_s, self.streak = (state["steps_to_solve"], state["time_to_solve_s"],
                                                                  state["streak"])
        self._elapsed = state["elapsed_s"]

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


class TestAt(pl.Callback):
    """The test set's loss and metric after some epochs (the epoch nearest each share of `test_at`): what a run
    with that share of the budget would have scored, with no extra training. `values`: share -> {"loss", metric}.
    A share whose epoch is the last, or that a run stopped early (solved) never reached, has no value: its final
    test stands for it."""

    def __init__(self, test_batches, shares: list[float], epochs: int):
        self.batches, self.values = test_batches, {}
        self.at = {s: min(epochs, max(1, round(s * epochs))) for s in shares}
        self.at = {s: e for s, e in self.at.items() if e < epochs}

    def state_dict(self):
        return {"values": {str(k): v for k, v in self.values.items()}, "at": {str(k): e for k, e in self.at.items()}}

    def load_state_dict(self, state):  # a value taken at another epoch (another run's checkpoint) is not ours
        at = {float(k): e for k, e in state.get("at", {}).items()}
        self.values = {float(k): v for k, v in state["values"].items() if at.get(float(k)) == self.at.get(float(k))}

    def on_train_epoch_end(self, trainer, pl_module):
        done = trainer.current_epoch + 1
        shares = [share for share, epoch in self.at.items() if epoch == done and share not in self.values]
        if shares:  # one test pass for the shares that round to this epoch
            with trainer.precision_plugin.test_step_context():
                value = pl_module.measure(self.batches)
            self.values |= dict.fromkeys(shares, value)

    def metrics(self, metric: str) -> dict[str, float]:
        """The values as run metrics: test_loss_at_0.25, test_acc_at_0.25, ..."""
        return {f"test_{key}_at_{share:g}": value[key] for share, value in self.values.items()
                for key in ("loss", metric) if key in value}


class Checkpointer(pl.Callback):
    """Every `minutes` (checked at epoch ends), the Trainer's checkpoint goes to the run as checkpoint/last.ckpt.

    The training stream's random state goes with it, so a resumed run sees the batches it would have.
    The run's tag `checkpoint_epoch` says which epoch the stored checkpoint closes.
    """

    def __init__(self, client, run_id: str, minutes: float | None, generator):
        """`minutes` None: never saves, only carries the stream's state in the checkpoints others save."""
        self.client, self.run_id, self.generator = client, run_id, generator
        self.every_s = minutes * 60 if minutes else float("inf")
        self.last = time.monotonic()

    def state_dict(self):
        return {"generator": self.generator.get_state()} if self.generator is not None else {}

    def load_state_dict(self, state):
        if self.generator is not None and "generator" in state:
            self.generator.set_state(state["generator"])

    def on_train_epoch_end(self, trainer, pl_module):
        if time.monotonic() - self.last < self.every_s or trainer.should_stop or \
                trainer.current_epoch + 1 >= (trainer.max_epochs or 0):
            return
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            trainer.save_checkpoint(f"{tmp}/last.ckpt")
            self.client.log_artifact(self.run_id, f"{tmp}/last.ckpt", "checkpoint")
        self.client.set_tag(self.run_id, "checkpoint_epoch", str(trainer.current_epoch))
        self.last = time.monotonic()
