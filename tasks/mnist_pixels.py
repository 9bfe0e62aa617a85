"""Sequential MNIST by pixels: 784 steps of one pixel; `permute: true` gives permuted pixel MNIST."""
import torch
from pydantic.dataclasses import dataclass

from suite.schema import STRICT
from tasks._mnist import MnistConfig
from tasks.mnist_rows import MnistRows


@dataclass(config=STRICT)
class MnistPixelsConfig(MnistConfig):
    permute: bool = False  # shuffle the pixel order by a fixed permutation (pMNIST)
    permute_seed: int = 92_916  # seeds that permutation; recorded with every run


class MnistPixels(MnistRows):
    """Classify a digit from its 784 pixels in scan-line (or a fixed permuted) order."""

    name = "mnist_pixels"
    Config = MnistPixelsConfig
    input_size = 1
    steps = 784

    def transform(self, x):
        if not self.cfg.permute:
            return x
        perm = torch.randperm(self.steps, generator=torch.Generator().manual_seed(self.cfg.permute_seed))
        return x[:, perm.to(x.device)]

    def variant(self):
        return "permuted" if self.cfg.permute else ""

    def describe(self):
        extra = {"permute": self.cfg.permute, "permute_seed": self.cfg.permute_seed} if self.cfg.permute else {}
        return super().describe() | extra
