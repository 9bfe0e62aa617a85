"""Associative recall: key-value pairs, then queries of keys; answer each query with its key's value.

Ba et al. 2016 (Using Fast Weights to Attend to the Recent Past, §4.1: associative retrieval) with several
queries per sequence, as Zoology does (Arora et al. 2023, multi-query associative recall). Inputs: P pairs
(a key, then its value; every key once, in random order), a separator, then Q queried keys; the target at
each query step is the value paired with that key.
Where ours differs from Zoology's generator (zoology/data/multiquery_ar.py, MQARConfig): there the keys and the
values are distinct draws from the two halves of a large vocabulary (8,192), the queries come after the pairs
at power-law gaps (power_a 0.01) among random filler tokens, and only the query positions are scored (labels
-100 elsewhere). Here every key of a P-key alphabet appears once, values are drawn with repetition from
`values`, the Q queries follow a separator back to back, and the loss is over every step with blank targets
(a blind predictor scores Q log V / (T + 1 + Q)); accuracy is over the queries, as Zoology's. Zoology's first
setting (input_seq_len 64, num_kv_pairs 4) has 4 pairs among 64 steps; ours puts T/2 pairs in T steps.
"""
import math

import torch
import torch.nn.functional as F
from pydantic.dataclasses import dataclass

from suite.schema import STRICT, PosInt, Share
from tasks.base import SyntheticTask


@dataclass(config=STRICT)
class AssocRecallConfig:
    seq_len: PosInt = 32  # T: the pairs' steps (2 a pair)
    queries: PosInt = 4  # Q: keys asked for after the separator
    values: PosInt = 8  # value alphabet size
    solved_acc: Share = 0.99  # solved at this accuracy over the queries


class AssocRecall(SyntheticTask):
    """Recall the value of each queried key among T/2 pairs; a blind guess scores Q log V / (T+1+Q)."""

    name = "assoc_recall"
    Config = AssocRecallConfig
    output_kind = "class_every"
    horizon = (16, 32, 64)
    metric_definition = "accuracy over the queried values"

    @property
    def pairs(self):
        return max(1, self.cfg.seq_len // 2)

    @property
    def input_size(self):
        return 1 + self.pairs + self.cfg.values + 1  # blank, the keys, the values, the separator

    @property
    def n_outputs(self):
        return 1 + self.cfg.values  # blank or a value

    @property
    def scored_steps(self):
        return self.cfg.queries

    @property
    def input_steps(self):
        return 2 * self.pairs + 1 + self.cfg.queries

    def chance_loss(self):
        return self.cfg.queries * math.log(self.cfg.values) / self.input_steps

    def chance_metric(self):
        return 1 / self.cfg.values

    def key_steps(self, x):
        return [list(range(2 * self.pairs))] * len(x)

    def make_batch(self, n, generator, device):
        P, Q, V = self.pairs, self.cfg.queries, self.cfg.values
        keys = torch.rand(n, P, generator=generator, device=device).argsort(dim=1)  # every key once, shuffled
        values = torch.randint(0, V, (n, P), generator=generator, device=device)
        asked = torch.randint(0, P, (n, Q), generator=generator, device=device)  # which pairs are queried
        tokens = torch.zeros(n, 2 * P + 1 + Q, dtype=torch.long, device=device)
        tokens[:, 0:2 * P:2] = 1 + keys
        tokens[:, 1:2 * P:2] = 1 + P + values
        tokens[:, 2 * P] = 1 + P + V  # the separator
        tokens[:, -Q:] = 1 + keys.gather(1, asked)
        target = torch.zeros_like(tokens)
        target[:, -Q:] = 1 + values.gather(1, asked)
        return F.one_hot(tokens, self.input_size).float(), target
