"""The adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015 set-up)."""
from typing import Annotated

import torch
from pydantic import Field
from pydantic.dataclasses import dataclass

from suite.schema import STRICT, PosFloat
from tasks.base import SyntheticTask


@dataclass(config=STRICT)
class AddingConfig:
    seq_len: Annotated[int, Field(ge=2)] = 200  # T: steps; one marker in each half
    solved_mse: PosFloat = 0.01  # solved below this test MSE (a constant guess scores 1/6): tasks/base.py is_solved


class Adding(SyntheticTask):
    """Sum the two values marked in a stream of T uniform numbers; a constant guess scores 1/6 MSE."""

    name = "adding"
    Config = AddingConfig
    output_kind = "regress_last"
    input_size = 2  # channel 0: value in U(0, 1); channel 1: marker
    n_outputs = 1
    horizon = (50, 100)  # default ladder of `rnnbench horizon --task adding`
    metric_definition = "mean squared error of the predicted sum"

    def chance_loss(self):
        return 1 / 6  # Var(U1 + U2) = 2/12: the MSE of always guessing the mean, 1

    def chance_metric(self):
        return 1 / 6  # the MSE of always guessing 1

    def key_steps(self, x):
        return [row.nonzero().flatten().tolist() for row in x[..., 1]]  # the two marked values

    def make_batch(self, n, generator, device):
        T, half = self.cfg.seq_len, self.cfg.seq_len // 2
        values = torch.rand(n, T, generator=generator, device=device)
        first = torch.randint(0, half, (n, 1), generator=generator, device=device)
        second = torch.randint(half, T, (n, 1), generator=generator, device=device)
        marks = torch.cat([first, second], dim=1)
        marker = torch.zeros(n, T, device=device).scatter_(1, marks, 1.0)
        target = values.gather(1, marks).sum(1, keepdim=True)
        return torch.stack([values, marker], dim=-1), target

