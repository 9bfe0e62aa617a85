"""Sequential MNIST by pixels: 784 steps of one pixel; `permute: true` gives permuted pixel MNIST."""
import numpy as np
import torch
from pydantic.dataclasses import dataclass

from suite.schema import STRICT
from tasks._mnist import MnistConfig
from tasks.mnist_rows import MnistRows


@dataclass(config=STRICT)
class MnistPixelsConfig(MnistConfig):
    permute: bool = False  # shuffle the pixel order by a fixed permutation (pMNIST)
    permute_seed: int = 92_916  # numpy.random.RandomState(seed).permutation(784), as expRNN and scoRNN draw it


class MnistPixels(MnistRows):
    """Classify a digit from its 784 pixels in scan-line (or a fixed permuted) order."""

    name = "mnist_pixels"
    Config = MnistPixelsConfig
    input_size = 1
    steps = 784

    def permutation(self) -> np.ndarray:
        """The literature's permutation (lezcano/expRNN 2_mnist.py, SpartinStuff/scoRNN): numpy's, not torch's."""
        return np.random.RandomState(self.cfg.permute_seed).permutation(self.steps)

    def transform(self, x):
        if not self.cfg.permute:
            return x
        return x[:, torch.from_numpy(self.permutation()).to(x.device)]

    def variant(self):
        return "permuted" if self.cfg.permute else ""

    def describe(self):
        extra = {"permute": self.cfg.permute, "permute_seed": self.cfg.permute_seed,
                 "permute_source": f"numpy.random.RandomState({self.cfg.permute_seed}).permutation(784)"}
        return super().describe() | (extra if self.cfg.permute else {})
