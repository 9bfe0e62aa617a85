"""What every task provides, and the one table of output kinds; see tasks/adding.py for the smallest task.

A task class that has a `name` is checked when it is defined: a required hook it lacks is an error then (an
import error of the registry), not a failure of every cell mid-run.
"""
from __future__ import annotations

import abc
import dataclasses
import hashlib
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
    "class_last": OutputKind(every_step=False, metric="acc", loss=_ce, score=_acc, last_step_loss=_ce),
    "class_every": OutputKind(every_step=True, metric="acc", loss=_ce_every, score=_acc_every,
                              last_step_loss=lambda out, y: _ce(out, y[:, -1])),
    "regress_last": OutputKind(every_step=False, metric="mse", loss=_mse, score=_squared_error, last_step_loss=_mse),
}
SOLVE_RULES = {"acc": "solved_acc", "mse": "solved_mse"}  # the Config field a task's solve threshold is read from


class Task:
    """A sequence task: its settings, shapes, output kind, chance baseline and data.

    Required (checked when a class with a `name` is defined): name, Config, output_kind, input_size, n_outputs,
    chance_loss(), and make_batch() (a SyntheticTask) or splits() (a dataset task, which also says its
    train_examples()). The rest have defaults.
    """

    name: str
    Config: type
    output_kind: str  # a key of OUTPUT_KINDS: picks the head, loss and metric
    input_size: int
    n_outputs: int  # classes, or 1 for regression
    scored_steps: int | None = None  # class_every: accuracy over the last N steps only (None: all)
    horizon: tuple[int, ...] = ()  # tasks with a seq_len: the default ladder of `rnnbench horizon`
    metric_definition: str = ""  # what the test metric measures, matched against published figures

    REQUIRED = ("name", "Config", "output_kind", "input_size", "n_outputs")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:  # a base for other tasks (SyntheticTask): nothing to check yet
            return
        missing = [a for a in cls.REQUIRED if not hasattr(cls, a)]
        missing += [n for n in dir(cls) if getattr(getattr(cls, n, None), "__isabstractmethod__", False)]
        if missing:
            raise TypeError(f"task {cls.__name__}: missing {', '.join(missing)} (tasks/base.py: Task)")
        if cls.output_kind not in OUTPUT_KINDS:
            raise TypeError(f"task {cls.__name__}: output_kind {cls.output_kind!r} is not one of "
                            f"{', '.join(OUTPUT_KINDS)}")
        fields, metric = getattr(cls.Config, "__dataclass_fields__", {}), OUTPUT_KINDS[cls.output_kind].metric
        wrong = [f for m, f in SOLVE_RULES.items() if f in fields and m != metric]
        if wrong:
            raise TypeError(f"task {cls.__name__}: {wrong[0]} does not fit its metric ({metric}): use "
                            f"{SOLVE_RULES[metric]}")

    def __init__(self, cfg):
        self.cfg = cfg

    @property
    def outputs(self) -> OutputKind:
        """How this task's outputs are scored (its entry of OUTPUT_KINDS)."""
        return OUTPUT_KINDS[self.output_kind]

    @property
    def seq_len(self) -> int:
        """The task's T, as reported in tables and tags."""
        return self.cfg.seq_len

    @property
    def input_steps(self) -> int:
        """Steps of an input sequence (copy: T + 20); sets the range of chrono initialisation and a cell's cost."""
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

    @abc.abstractmethod
    def chance_loss(self) -> float:
        """Loss of the best input-blind predictor."""

    def chance_metric(self) -> float | None:
        """The test metric of the best input-blind predictor (plots draw it as the chance line; None: no line)."""
        return None

    def key_steps(self, x: torch.Tensor) -> list[list[int]]:
        """For each input sequence, the steps that carry what must be remembered (marked on attention maps)."""
        return [[] for _ in range(len(x))]

    @abc.abstractmethod
    def splits(self, n_val: int, n_test: int, device) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Fixed validation and test sets, and for a dataset task the train set too: {split: (x, y)} on the
        device."""

    def data_source(self) -> str:
        """Where the data comes from (the runs' data_source tag): "synthetic" for generated tasks, else the task's
        name unless it says more (MNIST: mnist-5k, hf:ylecun/mnist or local:PATH)."""
        return self.name

    def describe(self) -> dict:
        """Facts a run records as task.* params: its data_source, and any others a task adds (a permutation seed)."""
        return {"data_source": self.data_source()}

    def check(self):
        """Raise a UserError now if the task's data cannot be had (before any run exists); generated: nothing to do."""

    def check_files(self):
        """What the dry run checks of check() without reading the data (a full copy takes seconds to decode): the
        local copy the settings point at is there and laid out as the loader reads it; generated: nothing to do."""

    def is_solved(self, metric: float) -> bool | None:
        """Whether a value of the task's metric meets its solve rule: the Config's `solved_acc` (accuracy at
        least this) or `solved_mse` (MSE below this); None when the task declares neither."""
        threshold = getattr(self.cfg, SOLVE_RULES[self.outputs.metric], None)
        if threshold is None:
            return None
        return metric >= threshold if self.outputs.higher_is_better else metric < threshold


class SyntheticTask(Task):
    """A task whose data is generated: endless training batches, val/test fixed by their seeds."""

    @abc.abstractmethod
    def make_batch(self, n: int, generator: torch.Generator, device) -> tuple[torch.Tensor, torch.Tensor]:
        """n sequences (x, y), drawn from `generator` on `device`: pure, seeded and vectorised."""

    def train_batch(self, n: int, generator: torch.Generator, device) -> tuple[torch.Tensor, torch.Tensor]:
        """A training batch: make_batch's, unless the task trains on another distribution than it is tested on
        (parity's mix of lengths)."""
        return self.make_batch(n, generator, device)

    def splits(self, n_val, n_test, device):
        """Drawn on the CPU, then moved: a CUDA generator draws other numbers for the same seed."""
        def fixed(n, seed):
            x, y = self.make_batch(n, torch.Generator("cpu").manual_seed(seed), "cpu")
            return x.to(device), y.to(device)

        return {"val": fixed(n_val, VAL_SEED), "test": fixed(n_test, TEST_SEED)}

    def data_source(self) -> str:
        return "synthetic"


def checksum(x: torch.Tensor, y: torch.Tensor) -> str:
    """A short fingerprint of a data set's values (on any device), recorded with every run."""
    h = hashlib.sha256()
    for t in (x, y):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
