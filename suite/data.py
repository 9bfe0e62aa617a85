"""Batches for the Trainer without a DataLoader: generated on the device, or sliced from device tensors."""
from __future__ import annotations

import math

import torch


class Stream:
    """`steps` freshly generated batches an epoch; the generator carries on across epochs."""

    def __init__(self, task, batch_size: int, steps: int, seed: int, device):
        self.task, self.batch_size, self.steps, self.device = task, batch_size, steps, device
        self.generator = torch.Generator(device).manual_seed(seed)

    def __len__(self):
        return self.steps

    def __iter__(self):
        for _ in range(self.steps):
            yield self.task.train_batch(self.batch_size, self.generator, self.device)


class Batches:
    """Pre-batched slices of tensors already on the device; reshuffled each epoch when seeded."""

    def __init__(self, x, y, batch_size: int, shuffle_seed: int | None = None, limit: int | None = None):
        self.x, self.y, self.batch_size = x, y, batch_size
        self.steps = min(math.ceil(len(x) / batch_size), limit or math.inf)
        self.generator = None if shuffle_seed is None else torch.Generator().manual_seed(shuffle_seed)

    def __len__(self):
        return self.steps

    def tensors(self):
        """The whole set (x, y)."""
        return self.x, self.y

    def __iter__(self):
        if self.generator is None:
            for i in range(self.steps):
                part = slice(i * self.batch_size, (i + 1) * self.batch_size)
                yield self.x[part], self.y[part]
            return
        order = torch.randperm(len(self.x), generator=self.generator).to(self.x.device)
        for i in range(self.steps):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield self.x[idx], self.y[idx]


class Groups:
    """Batches of an iterable in lists of `k`: one SeqModule.training_step call makes k optimizer steps."""

    def __init__(self, batches, k: int):
        self.batches, self.k = batches, k

    @property
    def generator(self):
        """The random state of the batches (saved with checkpoints)."""
        return self.batches.generator

    def __len__(self):
        return math.ceil(len(self.batches) / self.k)

    def __iter__(self):
        group = []
        for batch in self.batches:
            group.append(batch)
            if len(group) == self.k:
                yield group
                group = []
        if group:
            yield group
