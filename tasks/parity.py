"""Parity: is the number of ones in a bit stream odd? Answered at the last step.

The simplest state-tracking probe (Delétang et al. 2023, "Neural Networks and the Chomsky Hierarchy", the
"parity check" task; Beck et al. 2024, xLSTM §4.1's formal languages; Merrill, Petty & Sabharwal 2024, "The
Illusion of State in State-Space Models"): a nonlinear RNN tracks it with one flip-flop unit, while a linear
recurrence with a positive (or input-independent) transition cannot. Inputs: T bits, one-hot; the target is
their sum mod 2, read at the last step (loss and metric there only).

Lengths: with the answer only at the end, uniform T-bit strings give gradient descent no signal until the whole
function is found (parity is the classic hard case; measured here, no model of the cpu-probes profile left chance
at T=8 in 900 steps). Delétang et al. therefore train on lengths 1-40 mixed; ours keeps every sequence T steps
long and, in training (mixed_lengths), draws k uniform in 1..T and makes only the last k bits random (zeros
before them do not change the parity), so short instances teach the flip-flop first. Validation and test are
always T uniform bits. Where ours differs: Delétang et al. test on lengths 41-500, unseen; here a run is tested at
its T, and `rnnbench horizon` also tests it at 2T (test_vs_chance_at_2T) for length generalisation.
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
    mixed_lengths: bool = True  # training: only the last k ~ U{1..T} bits random (Delétang et al.'s length mix)
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

    def train_batch(self, n, generator, device):
        """Training: only the last k ~ U{1..T} bits random (mixed_lengths); validation and test: make_batch's."""
        x, y = self.make_batch(n, generator, device)
        if not self.cfg.mixed_lengths:
            return x, y
        T = self.cfg.seq_len
        k = torch.randint(1, T + 1, (n, 1), generator=generator, device=device)
        bits = x[..., 1].long() * (torch.arange(T, device=device) >= T - k)
        return F.one_hot(bits, 2).float(), bits.sum(1) % 2
