"""Induction heads: after a trigger token, recall the token that followed the trigger's earlier occurrence.

Olsson et al. 2022 ("In-context Learning and Induction Heads"); the synthetic task of the H3/Hyena harness
(HazyResearch/safari, src/dataloaders/synthetics.py, generate_induction_head) that Mamba §4.1.2 and Table 11
run (vocab 16, trained at length 256, tested up to 2^20). Inputs: T tokens drawn uniformly from the data
tokens, with the trigger at one random position p (0 <= p <= T-2) and the answer token after it, then the trigger
again; the target is the answer, read at the last step.
Where ours differs: Safari trains on every next token and scores the last; we train and score the last one
only (the other tokens are random, so their loss is a constant log V that would hide the one that matters from
the normalised score), one trigger per sequence (Safari's default, induction_len 1), and our vocabulary has
one special token, not two (Safari's vocab_size 16 = 14 data tokens + "=>" + "."; ours: `tokens` 14 + the
trigger).
"""
import math
from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field
from pydantic.dataclasses import dataclass

from suite.schema import STRICT, PosInt, Share
from tasks.base import SyntheticTask


@dataclass(config=STRICT)
class InductionConfig:
    seq_len: Annotated[int, Field(ge=3)] = 64  # T: tokens before the final trigger (Mamba: 256)
    tokens: PosInt = 14  # data tokens (Safari: vocab_size 16 minus its 2 special tokens)
    solved_acc: Share = 0.99  # solved at this test accuracy (a blind guess: 1 / tokens)


class Induction(SyntheticTask):
    """The token after the trigger's first occurrence, asked at the end; a blind guess scores log(tokens)."""

    name = "induction"
    Config = InductionConfig
    output_kind = "class_last"
    horizon = (32, 64, 128, 256)
    metric_definition = "accuracy of the recalled token at the last step"

    @property
    def input_size(self):
        return self.cfg.tokens + 1  # the data tokens, then the trigger

    @property
    def n_outputs(self):
        return self.cfg.tokens

    @property
    def input_steps(self):
        return self.cfg.seq_len + 1

    def chance_loss(self):
        return math.log(self.cfg.tokens)

    def chance_metric(self):
        return 1 / self.cfg.tokens

    def key_steps(self, x):
        return [[p, p + 1] for p in x[:, :-1, -1].argmax(1).tolist()]

    def make_batch(self, n, generator, device):
        T, V = self.cfg.seq_len, self.cfg.tokens
        tokens = torch.randint(0, V, (n, T + 1), generator=generator, device=device)
        where = torch.randint(0, T - 1, (n, 1), generator=generator, device=device)
        tokens.scatter_(1, where, V)  # the trigger at p; the token at p + 1 is the answer
        tokens[:, T] = V  # and again at the end
        return F.one_hot(tokens, V + 1).float(), tokens.gather(1, where + 1).squeeze(1)
