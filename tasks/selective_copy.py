"""Selective copying: recall K symbols scattered at random positions among noise, in order.

Jing et al. 2019 (Gated Orthogonal Recurrent Units, the "variable copying" task) and Gu & Dao 2023 (Mamba, §4.1,
"selective copying"): unlike the copy task, the positions change from sequence to sequence, so no fixed lag
(a time-invariant filter) can solve it. Inputs: T steps holding K symbols at random distinct positions (blanks
elsewhere), a delimiter, then K blank steps during which the symbols are to be output in their order.
"""
import math

import torch
import torch.nn.functional as F
from pydantic.dataclasses import dataclass

from suite.schema import STRICT, PosInt, Share
from tasks.base import SyntheticTask


@dataclass(config=STRICT)
class SelectiveCopyConfig:
    seq_len: PosInt = 50  # T: steps among which the symbols are scattered
    recall: PosInt = 8  # K: symbols to recall
    symbols: PosInt = 8  # alphabet size
    solved_acc: Share = 0.99  # solved at this accuracy over the recalled symbols


class SelectiveCopy(SyntheticTask):
    """Recall K symbols, scattered among T noise steps, after a delimiter; a blind guess scores K log S / (T+1+K)."""

    name = "selective_copy"
    Config = SelectiveCopyConfig
    output_kind = "class_every"
    horizon = (25, 50, 100)
    metric_definition = "accuracy over the recalled symbols"

    @property
    def input_size(self):
        return self.cfg.symbols + 2  # blank, the symbols, the delimiter

    @property
    def n_outputs(self):
        return self.cfg.symbols + 1  # blank or a symbol

    @property
    def scored_steps(self):
        return self.cfg.recall

    @property
    def input_steps(self):
        return self.cfg.seq_len + 1 + self.cfg.recall

    def chance_loss(self):
        return self.cfg.recall * math.log(self.cfg.symbols) / self.input_steps

    def chance_metric(self):
        return 1 / self.cfg.symbols

    def key_steps(self, x):
        return [row.nonzero().flatten().tolist() for row in x[:, : self.cfg.seq_len, 1:-1].sum(-1)]

    def make_batch(self, n, generator, device):
        T, K, S = self.cfg.seq_len, self.cfg.recall, self.cfg.symbols
        if K > T:
            raise ValueError(f"task.recall: {K} symbols cannot be scattered over {T} steps")
        positions = torch.rand(n, T, generator=generator, device=device).argsort(dim=1)[:, :K].sort(dim=1).values
        symbols = torch.randint(1, S + 1, (n, K), generator=generator, device=device)
        tokens = torch.zeros(n, T + 1 + K, dtype=torch.long, device=device)
        tokens.scatter_(1, positions, symbols)
        tokens[:, T] = S + 1  # the delimiter
        target = torch.zeros_like(tokens)
        target[:, -K:] = symbols
        return F.one_hot(tokens, S + 2).float(), target
