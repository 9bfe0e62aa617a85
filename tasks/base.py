"""What every task provides; see tasks/adding.py for the smallest complete example."""
from __future__ import annotations

import torch

# Validation and test sets are the same for every run and model, whatever the run's seed.
VAL_SEED, TEST_SEED = 1_000_003, 2_000_003

OUTPUT_KINDS = ("class_last", "class_every", "regress_last")


class Task:
    """A sequence task: its settings, shapes, output kind, chance baseline and data."""

    name: str
    Config: type
    output_kind: str  # one of OUTPUT_KINDS: picks the head, loss and metric in suite/module.py
    input_size: int
    n_outputs: int  # classes, or 1 for regression
    scored_steps: int | None = None  # class_every: accuracy over the last N steps only (None: all)

    def __init__(self, cfg):
        self.cfg = cfg

    @property
    def seq_len(self) -> int:
        """The task's T, as reported in tables and tags."""
        return self.cfg.seq_len

    def chance_loss(self) -> float:
        """Loss of the best input-blind predictor."""
        raise NotImplementedError

    def splits(self, n_val: int, n_test: int, device) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Fixed validation and test sets (and the train set for dataset tasks)."""
        raise NotImplementedError

    def describe(self) -> dict:
        """Extra facts a run records (data source, permutation seed, ...)."""
        return {}

    def is_solved(self, metric: float) -> bool | None:
        """Whether a value of the task's metric (acc or mse) meets its solve rule; None: the task has none."""
        return None


class SyntheticTask(Task):
    """A task whose data is generated: endless training batches, val/test fixed by their seeds."""

    def make_batch(self, n: int, generator: torch.Generator, device) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def splits(self, n_val, n_test, device):
        def fixed(n, seed):
            return self.make_batch(n, torch.Generator(device).manual_seed(seed), device)

        return {"val": fixed(n_val, VAL_SEED), "test": fixed(n_test, TEST_SEED)}

    def describe(self):
        return {"data_source": "synthetic"}
