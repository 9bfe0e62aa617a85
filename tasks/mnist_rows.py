"""Sequential MNIST by rows: 28 steps of 28 pixels."""
import math

import torch
from pydantic.dataclasses import dataclass

from suite.schema import STRICT
from tasks._mnist import MnistConfig, load_mnist, to_sequences
from tasks.base import Task


@dataclass(config=STRICT)
class MnistRowsConfig(MnistConfig):
    pass


class MnistRows(Task):
    """Classify a digit from its rows, read top to bottom."""

    name = "mnist_rows"
    Config = MnistRowsConfig
    output_kind = "class_last"
    input_size = 28
    n_outputs = 10
    steps = 28

    @property
    def seq_len(self):
        return self.steps

    def chance_loss(self):
        return math.log(10)

    def splits(self, n_val, n_test, device):
        arrays, self.data_source = load_mnist(self.cfg)
        return {s: (self.transform(to_sequences(x, device, self.steps)), torch.from_numpy(y).to(device))
                for s, (x, y) in arrays.items()}

    def transform(self, x):
        return x

    def describe(self):
        return {"data_source": self.data_source}
