"""What every task provides, and the one table of output kinds; see tasks/adding.py for the smallest task."""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch
import torch.nn.functional as F

# Validation and test sets are the same for every run, model and device, whatever the run's seed: drawn on the
# CPU from these seeds (which no run may use as its own), then moved to the training device.
VAL_SEED, TEST_SEED = 1_000_003, 2_000_003


@dataclasses.dataclass(frozen=True)
class OutputKind:
    """How a task's outputs are scored: read by the module, gradient flow and the report alike."""

    every_step: bool  # the head reads every step (else only the last)
    metric: str  # the test metric, logged as val_<metric> and test_<metric>: "acc" or "mse"
    loss: Callable  # (out, y) -> the batch's mean loss
    score: Callable  # (out, y, scored_steps) -> the metric summed over the batch's sequences
    last_step_loss: Callable  # (the last step's out, y) -> the loss of that step alone (gradient flow)

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "acc"


def _ce(out, y):
    return F.cross_entropy(out.float(), y)


def _ce_every(out, y):
    return F.cross_entropy(out.flatten(0, 1).float(), y.flatten())


def _mse(out, y):
    return F.mse_loss(out.float(), y)


def _acc(out, y, scored):
    return (out.argmax(-1) == y).float().sum()


def _acc_every(out, y, scored):
    if scored:  # e.g. copy: only the recalled symbols count
        out, y = out[:, -scored:], y[:, -scored:]
    return (out.argmax(-1) == y).float().mean(-1).sum()


def _squared_error(out, y, scored):
    return (out.float() - y).pow(2).mean(-1).sum()


OUTPUT_KINDS = {
    "class_last": OutputKind(False, "acc", _ce, _acc, _ce),
    "class_every": OutputKind(True, "acc", _ce_every, _acc_every, lambda out, y: _ce(out, y[:, -1])),
    "regress_last": OutputKind(False, "mse", _mse, _squared_error, _mse),
}


class Task:
    """A sequence task: its settings, shapes, output kind, chance baseline and data."""

    name: str
    Config: type
    output_kind: str  # a key of OUTPUT_KINDS: picks the head, loss and metric
    input_size: int
    n_outputs: int  # classes, or 1 for regression
    scored_steps: int | None = None  # class_every: accuracy over the last N steps only (None: all)
    horizon: tuple[int, ...] = ()  # tasks with a seq_len: the default ladder of `rnnbench horizon`
    metric_definition: str = ""  # what the test metric measures, matched against published figures

    def __init__(self, cfg):
        self.cfg = cfg

    @property
    def kind(self) -> OutputKind:
        return OUTPUT_KINDS[self.output_kind]

    @property
    def seq_len(self) -> int:
        """The task's T, as reported in tables and tags."""
        return self.cfg.seq_len

    @property
    def input_steps(self) -> int:
        """Steps of an input sequence (copy: T + 20); sets the range of chrono initialisation."""
        return self.seq_len

    @classmethod
    def has_length(cls) -> bool:
        """Whether T is a setting (so it can be swept and tested at other lengths)."""
        return "seq_len" in getattr(cls.Config, "__dataclass_fields__", {})

    def train_examples(self) -> int | None:
        """Training examples an epoch goes through (None: generated, steps_per_epoch batches); sizes ETAs."""
        return None

    def variant(self) -> str:
        """A variant reports show apart from the plain task (e.g. "permuted"); "" for none."""
        return ""

    def chance_loss(self) -> float:
        """Loss of the best input-blind predictor."""
        raise NotImplementedError

    def chance_metric(self) -> float | None:
        """The test metric of the best input-blind predictor (plots draw it as the chance line)."""
        return None

    def key_steps(self, x: torch.Tensor) -> list[list[int]]:
        """For each input sequence, the steps that carry what must be remembered (marked on attention maps)."""
        return [[] for _ in range(len(x))]

    def splits(self, n_val: int, n_test: int, device) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Fixed validation and test sets (and the train set for dataset tasks)."""
        raise NotImplementedError

    def describe(self) -> dict:
        """Extra facts a run records (data source, permutation seed, ...)."""
        return {}

    def check(self):
        """Raise a UserError now if the task's data cannot be had (before any run exists); generated: nothing to do."""

    def is_solved(self, metric: float) -> bool | None:
        """Whether a value of the task's metric (acc or mse) meets its solve rule; None: the task has none."""
        return None


class SyntheticTask(Task):
    """A task whose data is generated: endless training batches, val/test fixed by their seeds."""

    def make_batch(self, n: int, generator: torch.Generator, device) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def splits(self, n_val, n_test, device):
        """Drawn on the CPU, then moved: a CUDA generator draws other numbers for the same seed."""
        def fixed(n, seed):
            x, y = self.make_batch(n, torch.Generator("cpu").manual_seed(seed), "cpu")
            return x.to(device), y.to(device)

        return {"val": fixed(n_val, VAL_SEED), "test": fixed(n_test, TEST_SEED)}

    def describe(self):
        return {"data_source": "synthetic"}


def checksum(x: torch.Tensor, y: torch.Tensor) -> str:
    """A short fingerprint of a data set's values (on any device), recorded with every run."""
    import hashlib

    h = hashlib.sha256()
    for t in (x, y):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
