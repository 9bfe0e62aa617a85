"""Parity: is the number of ones in a bit stream odd? Answered at the last step.

The simplest state-tracking probe (Delétang et al. 2023, "Neural Networks and the Chomsky Hierarchy", the
"parity check" task; Beck et al. 2024, xLSTM §4.1's formal languages; Merrill, Petty & Sabharwal 2024, "The
Illusion of State in State-Space Models"): a nonlinear RNN tracks it with one flip-flop unit, while a linear
recurrence with a positive (or input-independent) transition cannot. Inputs: T uniform random bits, one-hot;
the target is their sum mod 2, read at the last step (loss and metric there only). Unlike Delétang et al., who
train on lengths 1-40 mixed and test on 41-500, a run trains at one T; `rnnbench horizon` sweeps T, and every
run is also tested at 2T (test_vs_chance_at_2T) for length generalisation.
"""
import math
from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field
from pydantic.dataclasses import dataclass

from suite.schema import STRICT, Share
from tasks.base import SyntheticTask


@dataclass(config=STRICT)
class ParityConfig:
    seq_len: Annotated[int, Field(ge=2)] = 32  # T: bits
    solved_acc: Share = 0.99  # solved at this test accuracy (a blind guess scores 0.5)


class Parity(SyntheticTask):
    """The parity of T random bits, at the last step; a blind guess scores log 2 and 50%."""

    name = "parity"
    Config = ParityConfig
    output_kind = "class_last"
    input_size = 2  # the bit, one-hot
    n_outputs = 2
    horizon = (16, 32, 64, 128)
    metric_definition = "accuracy of the parity at the last step"

    def chance_loss(self):
        return math.log(2)  # the parity of uniform bits is a fair coin

    def chance_metric(self):
        return 0.5

    def make_batch(self, n, generator, device):
        bits = torch.randint(0, 2, (n, self.cfg.seq_len), generator=generator, device=device)
        return F.one_hot(bits, 2).float(), bits.sum(1) % 2
