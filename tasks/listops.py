"""ListOps: the value (0-9) of a nested list of operations, read token by token (Nangia & Bowman 2018; Long
Range Arena, Tay et al. 2021, whose generator this follows).

The grammar of LRA's `lra_benchmarks/data/listops.py`: a node is a digit with probability 0.25 (always at the
maximum depth), else one of MIN, MAX, MED (the median, rounded down) or SM (the sum mod 10) over 2 to
`max_args` nodes, closed by "]". Expressions outside [min_len, seq_len] tokens are drawn again. LRA uses
lengths 500-2,000 (96,000 training expressions); the cpu profile uses shorter ones. Not generated on the
device: the trees are drawn once in Python from fixed seeds, then served like a dataset (the parentheses of
LRA's text form, which carry no information, are left out). Inputs are one-hot tokens, left-padded so that
every expression ends at the last step; the class is its value.
"""
import functools
import random
from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from pydantic.dataclasses import dataclass

from suite.schema import STRICT, PosInt
from tasks.base import Task

OPERATORS = ("MIN", "MAX", "MED", "SM")
VOCAB = ("<pad>", *(str(d) for d in range(10)), *OPERATORS, "]")  # token ids
LEAF = 0.25  # LRA's VALUE_P


@dataclass(config=STRICT)
class ListOpsConfig:
    seq_len: Annotated[int, Field(ge=8)] = 100  # T: the longest expression (inputs are padded to it)
    min_len: PosInt = 10  # the shortest expression
    max_depth: PosInt = 4  # LRA: 10
    max_args: Annotated[int, Field(ge=2)] = 5  # LRA: 10
    n_train: PosInt = 20_000  # LRA: 96,000
    n_eval: PosInt = 2_000  # validation and test expressions each (LRA: 2,000)


class TooLong(Exception):
    """The expression outgrew the longest allowed: LRA would draw again, and so do we, without finishing it."""


def tree(rng: random.Random, depth: int, max_depth: int, max_args: int, budget: list | None = None) -> list:
    """Tokens of a random expression, LRA's grammar; `budget` ([tokens left]) stops one that grows too long."""
    if budget is not None:
        budget[0] -= 1
        if budget[0] < 0:
            raise TooLong
    if depth >= max_depth or rng.random() < LEAF:
        return [str(rng.randrange(10))]
    tokens = [rng.choice(OPERATORS)]
    for _ in range(rng.randint(2, max_args)):
        tokens += tree(rng, depth + 1, max_depth, max_args, budget)
    return [*tokens, "]"]


def value(tokens: list) -> int:
    """An expression's value, evaluated with a stack."""
    stack = []
    for token in tokens:
        if token == "]":
            args = []
            while not isinstance(stack[-1], str):
                args.append(stack.pop())
            op = stack.pop()
            stack.append({"MIN": min, "MAX": max, "SM": lambda a: sum(a) % 10,
                          "MED": lambda a: int(np.median(a))}[op](args))
        else:
            stack.append(token if token in OPERATORS else int(token))
    return stack[0]


@functools.lru_cache(maxsize=8)
def dataset(cfg_key: tuple, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n expressions (token ids, left-padded to seq_len) and their values, drawn from `seed`."""
    seq_len, min_len, max_depth, max_args = cfg_key
    rng, ids, rows, labels = random.Random(seed), {t: i for i, t in enumerate(VOCAB)}, [], []
    while len(rows) < n:
        try:
            tokens = tree(rng, 1, max_depth, max_args, [seq_len])
        except TooLong:
            continue
        if min_len <= len(tokens) <= seq_len:
            rows.append([0] * (seq_len - len(tokens)) + [ids[t] for t in tokens])
            labels.append(value(tokens))
    return np.asarray(rows, dtype=np.int64), np.asarray(labels, dtype=np.int64)


class ListOps(Task):
    """Classify the value of a nested MIN/MAX/MED/SM expression; a blind guess scores the labels' entropy."""

    name = "listops"
    Config = ListOpsConfig
    output_kind = "class_last"
    input_size = len(VOCAB)
    n_outputs = 10
    horizon = (50, 100, 200)
    metric_definition = "accuracy over the test expressions"
    SEEDS = {"train": 11, "val": 1_000_003, "test": 2_000_003}

    def _key(self):
        c = self.cfg
        return c.seq_len, c.min_len, c.max_depth, c.max_args

    def train_examples(self):
        return self.cfg.n_train

    def check(self):
        if self.cfg.min_len > self.cfg.seq_len:
            raise ValueError(f"task.min_len: {self.cfg.min_len} is over seq_len {self.cfg.seq_len}")

    def splits(self, n_val, n_test, device):
        out = {}
        for split, n in (("train", self.cfg.n_train), ("val", self.cfg.n_eval), ("test", self.cfg.n_eval)):
            x, y = (torch.from_numpy(a) for a in dataset(self._key(), n, self.SEEDS[split]))
            out[split] = F.one_hot(x, self.input_size).float().to(device), y.to(device)
        return out

    def chance_loss(self):
        _, y = dataset(self._key(), self.cfg.n_train, self.SEEDS["train"])
        p = np.bincount(y, minlength=10) / len(y)
        return float(-(p[p > 0] * np.log(p[p > 0])).sum())  # the best blind guess: the labels' frequencies

    def chance_metric(self):
        _, y = dataset(self._key(), self.cfg.n_train, self.SEEDS["train"])
        return float(np.bincount(y, minlength=10).max() / len(y))  # always guessing the commonest value

    def data_source(self):
        return "synthetic"
