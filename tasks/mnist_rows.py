"""Sequential MNIST by rows: 28 steps of 28 pixels."""
import math

import torch
from pydantic.dataclasses import dataclass

from suite.schema import STRICT
from tasks import _hub as hub
from tasks._mnist import DATA, MnistConfig, load_mnist, source_of, to_sequences
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
    metric_definition = "accuracy over the test digits"
    steps = 28

    @property
    def seq_len(self):
        return self.steps

    def chance_loss(self):
        return math.log(10)

    def chance_metric(self):
        return 0.1  # guessing one class

    def train_examples(self):
        return self.cfg.max_train or 55_000  # 60k less the 5k carved out for validation

    def check(self):
        load_mnist(self.cfg)  # cached: the runs use what this loaded

    def check_files(self):
        hub.check_files(self.cfg, DATA)

    def splits(self, n_val, n_test, device):
        arrays, _ = load_mnist(self.cfg)
        return {s: (self.transform(to_sequences(x, device, self.steps, self.cfg.scale)), torch.from_numpy(y).to(device))
                for s, (x, y) in arrays.items()}

    def transform(self, x):
        return x

    def data_source(self):
        return source_of(self.cfg)[1]  # each source loaded once per process: the runs use what this found

    def describe(self):
        return {**super().describe(), "pixels": "x/255 in [0, 1]" if self.cfg.scale == "unit"
                else "(x/255 - 0.1307) / 0.3081"}
