"""The copying memory task, as Arjovsky, Shah & Bengio (2016) define it."""
import math

import torch
import torch.nn.functional as F
from pydantic.dataclasses import dataclass

from suite.schema import STRICT, PosInt, Share
from tasks.base import SyntheticTask

BLANK, DELIMITER, N_SYMBOLS, N_RECALL = 0, 9, 8, 10


@dataclass(config=STRICT)
class CopyConfig:
    seq_len: PosInt = 100  # T: blanks between the symbols and the recall (T-1 blanks + delimiter)
    solved_acc: Share = 0.99  # solved at this accuracy over the recalled symbols


class Copy(SyntheticTask):
    """Recall 10 symbols after a delay of T steps; inputs and targets are T+20 steps long."""

    name = "copy"
    Config = CopyConfig
    output_kind = "class_every"
    input_size = 10  # one-hot: blank, symbols 1..8, delimiter
    n_outputs = N_SYMBOLS + 1  # blank or a symbol
    scored_steps = N_RECALL  # accuracy counts the recalled symbols only
    horizon = (50, 100)  # default ladder of `rnnbench horizon --task copy`
    metric_definition = "accuracy over the 10 recalled symbols"  # EUNN/expRNN-style: over all T+20 steps

    @property
    def input_steps(self):
        return self.cfg.seq_len + 2 * N_RECALL

    def chance_loss(self):
        # Blanks are predictable; the best blind guess at the 10 recall steps is uniform over 8 symbols.
        return N_RECALL * math.log(N_SYMBOLS) / (self.cfg.seq_len + 2 * N_RECALL)

    def chance_metric(self):
        return 1 / N_SYMBOLS  # a uniform guess over the 8 symbols at each recall step

    def key_steps(self, x):
        return [list(range(N_RECALL)) + [N_RECALL + self.cfg.seq_len - 1]] * len(x)  # the symbols, the delimiter

    def make_batch(self, n, generator, device):
        T = self.cfg.seq_len
        symbols = torch.randint(1, N_SYMBOLS + 1, (n, N_RECALL), generator=generator, device=device)
        tokens = torch.full((n, T + 2 * N_RECALL), BLANK, dtype=torch.long, device=device)
        tokens[:, :N_RECALL] = symbols
        tokens[:, N_RECALL + T - 1] = DELIMITER
        target = torch.full_like(tokens, BLANK)
        target[:, -N_RECALL:] = symbols
        return F.one_hot(tokens, self.input_size).float(), target
