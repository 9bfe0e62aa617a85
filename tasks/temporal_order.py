"""The temporal order problem: which of X and Y came first, and second, among distractors.

Hochreiter & Schmidhuber 1997 (Long Short-Term Memory, §5.6, task 6a): a sequence starts with B and ends with
E; every other step is one of the distractors a, b, c, d, except two steps, one early (between 10% and 20% of
the length) and one in the middle (between 50% and 60%), that hold X or Y. The class is the order: XX, XY, YX
or YY. With `relevant: 3` (task 6b) a third one comes late (between 80% and 90%), and there are 8 classes.
"""
import math
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from pydantic.dataclasses import dataclass

from suite.schema import STRICT, Share
from tasks.base import SyntheticTask

B, E, X, Y = 0, 1, 2, 3  # then the distractors a, b, c, d: 4..7
WINDOWS = ((0.1, 0.2), (0.5, 0.6), (0.8, 0.9))  # where the relevant symbols go, as fractions of the length


@dataclass(config=STRICT)
class TemporalOrderConfig:
    seq_len: Annotated[int, Field(ge=20)] = 100  # T: steps, B and E included
    relevant: Literal[2, 3] = 2  # X/Y symbols to order: task 6a (4 classes) or 6b (8 classes)
    solved_acc: Share = 0.95  # solved at this test accuracy


class TemporalOrder(SyntheticTask):
    """Classify the order of the 2 (or 3) X/Y symbols among distractors; a blind guess scores log of the classes."""

    name = "temporal_order"
    Config = TemporalOrderConfig
    output_kind = "class_last"
    input_size = 8
    horizon = (50, 100, 200)
    metric_definition = "accuracy over the test sequences"

    @property
    def n_outputs(self):
        return 2 ** self.cfg.relevant

    def chance_loss(self):
        return math.log(self.n_outputs)

    def chance_metric(self):
        return 1 / self.n_outputs

    def key_steps(self, x):
        return [row.nonzero().flatten().tolist() for row in x[..., X:Y + 1].sum(-1)]

    def make_batch(self, n, generator, device):
        T, R = self.cfg.seq_len, self.cfg.relevant
        tokens = torch.randint(4, 8, (n, T), generator=generator, device=device)
        tokens[:, 0], tokens[:, -1] = B, E
        label = torch.zeros(n, dtype=torch.long, device=device)
        for low, high in WINDOWS[:R]:
            first, last = max(1, int(low * T)), max(int(low * T) + 1, int(high * T))
            where = torch.randint(first, last, (n, 1), generator=generator, device=device)
            which = torch.randint(0, 2, (n, 1), generator=generator, device=device)  # 0: X, 1: Y
            tokens.scatter_(1, where, X + which)
            label = 2 * label + which[:, 0]
        return F.one_hot(tokens, 8).float(), label
