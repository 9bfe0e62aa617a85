"""Training one cell, with no MLflow inside: its batches and module, the Trainer, fit, then test.

suite/runner.py records what this returns; the speed harness and gradient flow build cells here too.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import resource
import warnings

from suite.callbacks import SolveWatch, TestAt, TrainSpeed
from suite.config import Cell, device_of
from tasks.base import checksum


def init_torch():
    """Process-wide torch settings; call before the first parallel op (threads inherit it then)."""
    import torch

    # Denormals slow the backward pass of long sequences 3-5x on CPU; flushing them costs nothing.
    torch.set_flush_denormal(True)
    torch.backends.cuda.matmul.allow_tf32 = True  # 32-true on CUDA: TF32 tensor cores, as cuDNN's RNNs already use
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if os.environ.get("RNNBENCH_THREADS"):  # set for parallel tuning workers: the cores split between them
        torch.set_num_threads(int(os.environ["RNNBENCH_THREADS"]))
    import lightning.pytorch  # noqa: F401  (it sets its loggers to INFO on import: quieten them after)
    with contextlib.suppress(ImportError):
        import pytorch_lightning  # noqa: F401  (the same, under the name mlflow.pytorch imports it by)

    for name in ("lightning.pytorch", "pytorch_lightning", "lightning.fabric", "lightning_utilities", "mlflow",
                 "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*(does not have many workers|LeafSpec|treespec).*")
    warnings.filterwarnings("ignore", message=".*(smaller than the logging interval|but have no `val_dataloader`).*")
    # a node with SLURM installed: each job trains on one device, and `rnnbench slurm` writes its own arrays
    warnings.filterwarnings("ignore", message=".*The `srun` command is available on your system but is not used.*")


def device_for(cell: Cell) -> str:
    return device_of(cell.train.device)


def precision_for(cell: Cell, device: str) -> str:
    """The Lightning precision a cell trains in; auto as suite/precision.py decides from what the stack runs."""
    if cell.train.precision != "auto":
        return cell.train.precision
    from suite.precision import auto

    return auto(cell.model, device)


def assemble(cell: Cell, device: str):
    """The task, its batches and the LightningModule of a cell: (task, train, val, test, module).

    `train` yields groups of steps_per_call batches; `train.batches` is the plain batch iterable.
    """
    import lightning.pytorch as pl

    from suite.data import Batches, Groups, Stream
    from tasks.base import SyntheticTask

    task = cell.make_task()
    tc = cell.train
    pl.seed_everything(cell.seed, verbose=False)
    splits = task.splits(tc.n_val, tc.n_test, device)
    if isinstance(task, SyntheticTask):
        train = Stream(task, tc.batch_size, tc.batches_per_epoch, cell.seed, device)
    else:
        train = Batches(*splits["train"], tc.batch_size, shuffle_seed=cell.seed, limit=tc.steps_per_epoch)
    train = Groups(train, tc.steps_per_call)
    val, test = (Batches(*splits[s], tc.eval_batch_size) for s in ("val", "test"))
    return task, train, val, test, module_of(cell, task)


def module_of(cell: Cell, task):
    """The cell's SeqModule for `task`, its hidden size solved for model.param_budget."""
    from suite.config import sized
    from suite.module import SeqModule

    return SeqModule(cell.model, sized(cell.model, cell.model_cfg, task.input_size, task.n_outputs), task, cell.train)


def trainer_for(cell: Cell, device: str, callbacks: list, progress: bool, **overrides):
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import TQDMProgressBar

    if progress:  # below the matrix bar, which holds the first line
        callbacks = [*callbacks, TQDMProgressBar(process_position=1, leave=False)]
    budget = {"max_time": {"seconds": round(cell.train.max_minutes * 60)}} if cell.train.max_minutes else {}
    return pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu", devices=1, precision=precision_for(cell, device),
        max_epochs=cell.train.epochs, callbacks=callbacks, profiler=_no_profiler(),
        logger=False, enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=progress,
        num_sanity_val_steps=0, log_every_n_steps=10**9, **overrides, **budget)


def _no_profiler():
    """Lightning's default profiler wraps ~45 spots a step in a generator context (~0.1 ms a step)."""
    from lightning.pytorch.profilers import PassThroughProfiler

    class NoProfiler(PassThroughProfiler):
        def profile(self, action_name):
            return contextlib.nullcontext()

    return NoProfiler()


class Training:
    """One cell's task, batches (train_batches: groups of steps_per_call; val_ and test_batches) and module:
    fit() with the caller's callbacks, then evaluate()."""

    def __init__(self, cell: Cell, device: str | None = None):
        self.cell, self.device = cell, device or device_for(cell)
        self.task, self.train_batches, self.val_batches, self.test_batches, self.module = assemble(cell, self.device)
        self.speed = TrainSpeed(math.ceil(cell.train.warmup_steps / cell.train.steps_per_call))
        self.watch = SolveWatch(self.task, cell.train.stop_when_solved)
        self.test_at = TestAt(self.test_batches, cell.train.test_at, cell.train.epochs)
        self.initial = ({k: v.clone() for k, v in self.module.net.state_dict().items()}
                        if cell.train.gradflow else None)  # the weights at initialisation, for gradient flow
        self.trainer, self.val_loss, self.dtypes = None, None, None
        self.test_set_sha = checksum(*self.test_batches.tensors())

    def fit(self, callbacks=(), progress: bool = False, ckpt: str | None = None):
        """Train and validate every epoch; `ckpt` resumes from a checkpoint file (weights only, no pickles)."""
        import torch

        from suite.precision import ComputeDtypes

        self.dtypes = ComputeDtypes(self.module.net)  # what the layers output at the first step, as it runs
        self.trainer = trainer_for(self.cell, self.device, [self.speed, self.watch, self.test_at, *callbacks],
                                   progress)
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        self.trainer.fit(self.module, self.train_batches, self.val_batches, ckpt_path=ckpt,
                         weights_only=True if ckpt else None)
        value = self.trainer.callback_metrics.get("val_loss")  # before test() replaces the metrics
        self.val_loss = None if value is None else float(value)

    def measures(self) -> dict:
        """What training measured, the test set untouched: the chance loss, the solve watch, speed, size and memory
        (all a recipe search's run records besides its validation loss, logged each epoch)."""
        import torch

        peak = (torch.cuda.max_memory_allocated() / 2**20 if self.device == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # CPU: process peak RSS
        speed = self.speed
        return {"chance_loss": self.task.chance_loss(), **self.watch.metrics(),
                "train_samples_per_s": speed.samples_per_s, "peak_mem_mb": peak,
                "epoch_time_s": sum(speed.epoch_times) / max(len(speed.epoch_times), 1),
                "n_params": sum(p.numel() for p in self.module.parameters()), "epochs_trained": speed.epochs_started}

    def evaluate(self) -> dict:
        """Test metrics against chance (also at the shares of train.test_at), the solve rule and the measures;
        other lengths if asked for."""
        cell, task, module = self.cell, self.task, self.module
        result = self.trainer.test(module, self.test_batches, verbose=False)[0]
        metrics = {**{k: float(v) for k, v in result.items()}, **self.measures(),
                   "test_vs_chance": float(result["test_loss"]) / task.chance_loss(),
                   **self.test_at.metrics(module.metric)}
        solved = task.is_solved(metrics[f"test_{module.metric}"])
        if solved is not None:
            metrics["solved"] = float(solved)
        for length in cell.train.eval_seq_lens:
            at = self.test_at_length(length)
            if at is not None:
                metrics[f"test_vs_chance_at_{length}"] = at
        return metrics

    def test_at_length(self, length: int) -> float | None:
        """test_loss / chance loss of the trained model on the task's test set at another length; None where the
        task's inputs or outputs change with its length (assoc_recall: one key symbol a pair), so it cannot run."""
        from suite.data import Batches

        task = type(self.task)(dataclasses.replace(self.cell.task_cfg, seq_len=length))
        if (task.input_size, task.n_outputs) != (self.task.input_size, self.task.n_outputs):
            return None
        x, y = task.splits(1, self.cell.train.n_test, self.device)["test"]
        result = self.trainer.test(self.module, Batches(x, y, self.cell.train.eval_batch_size), verbose=False)[0]
        return float(result["test_loss"]) / task.chance_loss()
