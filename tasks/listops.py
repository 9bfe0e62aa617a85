"""ListOps: the value (0-9) of a nested list of operations, read token by token (Nangia & Bowman 2018; Long
Range Arena, Tay et al. 2021, whose generator this follows).

The grammar of LRA's `lra_benchmarks/data/listops.py` (`generate_tree`): below the maximum depth a node is one of
MIN, MAX, MED (the median, rounded down) or SM (the sum mod 10) with probability VALUE_P = 0.25 (LRA's `r >
VALUE_P` makes a digit), over 2 to `max_args` nodes and closed by "]"; else, and always at the maximum depth, it
is a digit. LRA keeps the trees whose length falls in its range and draws again otherwise; we draw from the same
distribution (the trees conditioned on their length) without drawing every rejected tree token by token: the
shapes of 65,536 trees are drawn at once, level by level, a tree being dropped as soon as it has outgrown seq_len,
and only the trees kept are written out, their operators and digits drawn then (they do not change a length).

Length: LRA's is `generate_tree`'s count, 1 a digit and 2 an operator (itself and its "]"), not the parentheses
its text form adds; ours is the same count, our tokens being the digits, the operators and "]" (VOCAB: the
parentheses carry no information and are left out). LRA's released input pipeline tokenises with tfds' default
Tokenizer, which drops every token not alphanumeric, "]" as well as "(" and ")" (long-range-arena issue #14; its
authors: "the brackets are required"); we keep "]". LRA keeps 500 < length < 2,000; here min_len <= length <=
seq_len, so LRA's set is min_len 501, seq_len 1999, max_depth 10, max_args 10, 96,000 training expressions. Two
differences, neither measurable at LRA's lengths: LRA draws one pool without duplicates and splits it, while each
of our splits is drawn from its own seed (a short expression can repeat, or appear in two splits).

Drawn sets are cached on disk, keyed by their settings, size, seed and SAMPLER, in $RNNBENCH_CACHE, else
$XDG_CACHE_HOME/rnnbench, else ~/.cache/rnnbench (under listops/), with the sha256 of their arrays, checked on
every read: a file that fails it is drawn again, and a folder that cannot be written is not used (a warning each).
Not generated on the device: drawn on the CPU from fixed seeds, then served like a dataset. Inputs are one-hot
tokens, left-padded so that every expression ends at the last step; the class is its value.
"""
import functools
import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
from pydantic import Field
from pydantic.dataclasses import dataclass

from suite.errors import one_line
from suite.schema import STRICT, PosInt
from tasks.base import Task

log = logging.getLogger(__name__)

OPERATORS = ("MIN", "MAX", "MED", "SM")
VOCAB = ("<pad>", *(str(d) for d in range(10)), *OPERATORS, "]")  # token ids
DIGIT, OPERATOR, END = 1, 11, 15  # the ids of "0", of "MIN" (the operators follow in order) and of "]"
VALUE_P = 0.25  # LRA's: a node below the maximum depth is an operator with this probability
BATCH = 65_536  # trees whose shapes are drawn at once
SAMPLER = 1  # part of a cached set's key: raise it when the same seed would draw other expressions


@dataclass(config=STRICT)
class ListOpsConfig:
    seq_len: Annotated[int, Field(ge=8)] = 100  # T: the longest expression (inputs are padded to it)
    min_len: PosInt = 10  # the shortest expression
    max_depth: PosInt = 4  # LRA: 10
    max_args: Annotated[int, Field(ge=2)] = 5  # LRA: 10
    n_train: PosInt = 20_000  # LRA: 96,000
    n_eval: PosInt = 2_000  # validation and test expressions each (LRA: 2,000)


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


def longest(max_depth: int, max_args: int) -> int:
    """The longest expression the grammar can make: every node above the maximum depth an operator of max_args."""
    return 1 if max_depth == 1 else 2 + max_args * longest(max_depth - 1, max_args)


def shapes(rng: np.random.Generator, n: int, max_depth: int, max_args: int, max_len: int):
    """The shapes of n trees, drawn level by level: [(tree of each node, its children (0: a digit))] from the
    root down (each level's nodes in tree order, a node's children in the order of their parents), and each
    tree's length, max_len + 1 for a tree stopped as soon as it was sure to be longer."""
    tree, length, levels = np.arange(n), np.zeros(n, np.int64), []
    for depth in range(1, max_depth + 1):
        op = rng.random(len(tree)) < VALUE_P if depth < max_depth else np.zeros(len(tree), bool)
        args = np.where(op, rng.integers(2, max_args + 1, len(tree)), 0)
        levels.append((tree, args))
        length += np.bincount(tree, 1 + op, minlength=n).astype(np.int64)
        # each child still to come adds a token or more, so a tree already past max_len is rejected now
        over = length + np.bincount(tree, args, minlength=n) > max_len
        length[over] = max_len + 1
        grows = op & ~over[tree]
        tree = np.repeat(tree[grows], args[grows])
    return levels, length


def write_out(rng: np.random.Generator, levels: list, keep: np.ndarray, seq_len: int):
    """The kept trees' token ids (uint8, left-padded to seq_len) and values: their operators and digits drawn
    now, values and subtree lengths computed bottom-up, each node's place in the text top-down."""
    row = np.full(len(keep), -1)
    row[keep] = np.arange(keep.sum())
    levels = [(row[tree][row[tree] >= 0], args[row[tree] >= 0]) for tree, args in levels]
    size, val, kind = [], [], []
    for rows, args in reversed(levels):
        op, n = args > 0, len(rows)
        s, v, k = np.ones(n, np.int64), rng.integers(0, 10, n), rng.integers(0, len(OPERATORS), n)
        if op.any():  # the children of this level's operators are the next level's nodes, grouped in order
            starts = np.cumsum(args[op]) - args[op]
            s[op] = 2 + np.add.reduceat(size[0], starts)
            v[op] = apply(k[op], val[0], starts, args[op])
        size.insert(0, s)
        val.insert(0, v)
        kind.insert(0, k)
    x = np.zeros((len(levels[0][0]), seq_len), np.uint8)
    pos = seq_len - size[0]  # the root's place: left-padded, so that the expression ends at the last step
    for d, (rows, args) in enumerate(levels):
        op = args > 0
        x[rows, pos] = np.where(op, OPERATOR + kind[d], DIGIT + val[d])
        x[rows[op], pos[op] + size[d][op] - 1] = END
        if d + 1 < len(levels):
            before = np.cumsum(size[d + 1]) - size[d + 1]  # tokens of the level's earlier nodes
            starts = np.cumsum(args[op]) - args[op]
            pos = np.repeat(pos[op] + 1 - before[starts], args[op]) + before  # after the parent and elder siblings
    return x, val[0]


def apply(kind: np.ndarray, values: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Each operator (kind: an index of OPERATORS) over its arguments, values[starts[i]:starts[i] + counts[i]]."""
    group = np.repeat(np.arange(len(starts)), counts)
    ordered = values[np.lexsort((values, group))]
    median = (ordered[starts + (counts - 1) // 2] + ordered[starts + counts // 2]) // 2  # int(np.median)
    return np.choose(kind, [np.minimum.reduceat(values, starts), np.maximum.reduceat(values, starts), median,
                            np.add.reduceat(values, starts) % 10])


def draw(cfg_key: tuple, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n expressions (token ids, uint8, left-padded to seq_len) and their values, drawn from `seed`: LRA's
    trees of min_len to seq_len tokens."""
    seq_len, min_len, max_depth, max_args = cfg_key
    rng, xs, ys, have = np.random.default_rng(seed), [], [], 0
    while have < n:
        levels, length = shapes(rng, BATCH, max_depth, max_args, seq_len)
        x, y = write_out(rng, levels, (length >= min_len) & (length <= seq_len), seq_len)
        xs.append(x)
        ys.append(y)
        have += len(y)
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


def cache_dir() -> Path:
    """Where drawn sets are kept: $RNNBENCH_CACHE, else $XDG_CACHE_HOME/rnnbench, else ~/.cache/rnnbench."""
    if os.environ.get("RNNBENCH_CACHE"):
        return Path(os.environ["RNNBENCH_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rnnbench"


def digest(x: np.ndarray, y: np.ndarray) -> str:
    """The sha256 of a set's arrays, stored beside them."""
    h = hashlib.sha256()
    for a in (x, y):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


@functools.lru_cache(maxsize=8)
def dataset(cfg_key: tuple, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """draw()'s expressions, read from the cache when it holds them, else drawn and stored there."""
    seq_len, min_len, max_depth, max_args = cfg_key
    path = cache_dir() / "listops" / f"T{seq_len}-min{min_len}-d{max_depth}-a{max_args}-n{n}-s{seed}-v{SAMPLER}.npz"
    got = read(path)
    if got is None:
        got = draw(cfg_key, n, seed)
        write(path, *got)
    return got


def read(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """A cached set, or None when there is none or it fails its checksum (which is said)."""
    if not path.exists():
        return None
    try:
        with np.load(path) as f:
            x, y, stored = f["x"], f["y"], str(f["sha256"])
        if digest(x, y) == stored:
            return x, y
        why = "its checksum does not match"
    except Exception as e:  # a truncated or corrupt file, whichever part of it numpy trips on
        why = one_line(e)
    log.warning(f"ListOps cache: {path} is unreadable ({why}); drawing it again")
    return None


def write(path: Path, x: np.ndarray, y: np.ndarray):
    """Store a set atomically (a temporary file, then renamed); a folder that cannot be written is warned of and
    skipped."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, x=x, y=y, sha256=np.array(digest(x, y)))
        os.replace(tmp, path)
    except OSError as e:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        _warn_once(f"ListOps cache: cannot write to {path.parent} ({one_line(e)}); drawing without caching")


@functools.lru_cache(maxsize=None)
def _warn_once(message: str):
    log.warning(message)


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
        c = self.cfg
        if c.min_len > c.seq_len:
            raise ValueError(f"task.min_len: {c.min_len} is over seq_len {c.seq_len}")
        if c.min_len > longest(c.max_depth, c.max_args):
            raise ValueError(f"task.min_len: {c.min_len} is over the longest expression of max_depth {c.max_depth} "
                             f"and max_args {c.max_args} ({longest(c.max_depth, c.max_args)} tokens)")

    def splits(self, n_val, n_test, device):
        out = {}
        for split, n in (("train", self.cfg.n_train), ("val", self.cfg.n_eval), ("test", self.cfg.n_eval)):
            x, y = (torch.from_numpy(a).to(device).long() for a in dataset(self._key(), n, self.SEEDS[split]))
            out[split] = torch.eye(self.input_size, device=device)[x], y  # one-hot floats, made as floats: LRA's
            # training set is 12 GB so, and F.one_hot's int64 would take twice that on the way
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
