"""The permutation word problem: compose a stream of permutations, and say the running product at every step.

Merrill, Petty & Sabharwal 2024 ("The Illusion of State in State-Space Models", ICML, §4 and §6): the word
problem of S5 is NC¹-complete, so no fixed-depth linear recurrence (S4, Mamba's diagonal SSMs) or transformer
solves it at every length, while a nonlinear RNN does; S3 (solvable, 6 elements) is the easier setting, as in Liu
et al. 2023 ("Transformers Learn Shortcuts to Automata"). Inputs: T elements of S_n drawn uniformly, one-hot over
the n! permutations (in itertools.permutations order); the target at step t is the product g_1 g_2 ... g_t
(applying g_1 first), so state is tracked at every step (token tagging, as Merrill et al. train it; loss and
accuracy over every step). Each prefix product is uniform over the group: a blind guess scores log n! per step.
"""
import itertools
import math
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from pydantic.dataclasses import dataclass

from suite.schema import STRICT, Share
from tasks.base import SyntheticTask


def group(n: int) -> tuple[list[tuple[int, ...]], torch.Tensor]:
    """S_n's elements and its product table: product[i, j] = the index of "apply element i, then element j"."""
    elements = list(itertools.permutations(range(n)))
    index = {p: i for i, p in enumerate(elements)}
    product = torch.tensor([[index[tuple(q[p[k]] for k in range(n))] for q in elements] for p in elements])
    return elements, product


@dataclass(config=STRICT)
class PermutationConfig:
    seq_len: Annotated[int, Field(ge=1)] = 32  # T: permutations to compose
    degree: Literal[3, 5] = 5  # S3 (6 elements, solvable) or S5 (120, not: the hard case)
    solved_acc: Share = 0.99  # solved at this accuracy over every step's product


class Permutation(SyntheticTask):
    """The running product of T random elements of S_n, at every step; a blind guess scores log n!."""

    name = "permutation"
    Config = PermutationConfig
    output_kind = "class_every"
    horizon = (8, 16, 32, 64)
    metric_definition = "accuracy of the running product over every step"

    def __init__(self, cfg):
        super().__init__(cfg)
        _, self.product = group(cfg.degree)

    @property
    def input_size(self):
        return math.factorial(self.cfg.degree)

    @property
    def n_outputs(self):
        return math.factorial(self.cfg.degree)

    def variant(self):
        return f"S{self.cfg.degree}"

    def chance_loss(self):
        return math.log(math.factorial(self.cfg.degree))

    def chance_metric(self):
        return 1 / math.factorial(self.cfg.degree)

    def make_batch(self, n, generator, device):
        size, product = self.n_outputs, self.product.to(device)
        words = torch.randint(0, size, (n, self.cfg.seq_len), generator=generator, device=device)
        state, states = words[:, 0], [words[:, 0]]
        for t in range(1, self.cfg.seq_len):
            state = product[state, words[:, t]]
            states.append(state)
        return F.one_hot(words, size).float(), torch.stack(states, 1)
