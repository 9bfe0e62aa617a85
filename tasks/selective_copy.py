"""Selective copying: recall K symbols scattered at random positions among noise, in order.

Jing et al. 2019 (Gated Orthogonal Recurrent Units, the "variable copying" task) and Gu & Dao 2023 (Mamba, §4.1,
"selective copying", Table 1): unlike the copy task, the positions change from sequence to sequence, so no fixed
lag (a time-invariant filter) can solve it. The generator is state-spaces/s4's (src/dataloaders/datasets/
copying.py, torch_copying_data with variable=True, the one Mamba's authors point to, mamba#343): T steps holding
K symbols at random distinct positions (blanks elsewhere), then K marker steps during which the symbols are to
be output in their order. s4's L (noise steps) is our T - K; its A (vocabulary: blank, symbols, marker) is our
`symbols` + 2; its config (configs/dataset/copying.yaml: l_noise 100, l_memorize 10, n_tokens 10) is T=110,
K=10, symbols 8.
Where ours differs: s4's loss and accuracy read only the K marker steps; ours reads the accuracy there too, but
the loss is over every step with blank targets before the markers (so a blind predictor that knows where the
answers are due scores K log S / (T + K), the chance loss), as the copy task's loss is.
"""
import math

import torch
import torch.nn.functional as F
from pydantic.dataclasses import dataclass

from suite.schema import STRICT, PosInt, Share
from tasks.base import SyntheticTask


@dataclass(config=STRICT)
class SelectiveCopyConfig:
    seq_len: PosInt = 110  # T: steps among which the symbols are scattered (s4: l_noise + l_memorize)
    recall: PosInt = 10  # K: symbols to recall (s4: l_memorize)
    symbols: PosInt = 8  # alphabet size (s4: n_tokens - 2)
    solved_acc: Share = 0.99  # solved at this accuracy over the recalled symbols


class SelectiveCopy(SyntheticTask):
    """Recall K symbols, scattered among T steps, at K marker steps; a blind guess scores K log S / (T + K)."""

    name = "selective_copy"
    Config = SelectiveCopyConfig
    output_kind = "class_every"
    horizon = (25, 50, 100)
    metric_definition = "accuracy over the recalled symbols"

    @property
    def input_size(self):
        return self.cfg.symbols + 2  # blank, the symbols, the marker

    @property
    def n_outputs(self):
        return self.cfg.symbols + 1  # blank or a symbol

    @property
    def scored_steps(self):
        return self.cfg.recall

    @property
    def input_steps(self):
        return self.cfg.seq_len + self.cfg.recall

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
        tokens = torch.zeros(n, T + K, dtype=torch.long, device=device)
        tokens.scatter_(1, positions, symbols)
        tokens[:, T:] = S + 1  # the markers: output now
        target = torch.zeros_like(tokens)
        target[:, -K:] = symbols
        return F.one_hot(tokens, S + 2).float(), target
