"""Remember the sign of the first step through T steps of noise: the task file the extension test drops into tasks/."""
import math

import torch
from pydantic.dataclasses import dataclass

from suite.schema import STRICT, PosInt, Share
from tasks.base import SyntheticTask


@dataclass(config=STRICT)
class ToyTaskConfig:
    seq_len: PosInt = 8  # T: steps, the first one carrying the sign
    solved_acc: Share = 0.9  # solved at this test accuracy (the base class's is_solved reads it)


class ToyTask(SyntheticTask):
    """Class 1 when the first input is positive; the rest is noise. A blind guess scores log 2."""

    name = "toy_sign"
    Config = ToyTaskConfig
    output_kind = "class_last"
    input_size = 1
    n_outputs = 2
    horizon = (4, 8)

    def chance_loss(self):
        return math.log(2)

    def make_batch(self, n, generator, device):
        x = torch.randn(n, self.cfg.seq_len, 1, generator=generator, device=device)
        return x, (x[:, 0, 0] > 0).long()
