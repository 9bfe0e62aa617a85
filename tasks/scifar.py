"""Sequential CIFAR-10: a 32x32 image read pixel by pixel, 1,024 steps, classified (10 classes) at the end.

Source: the Hugging Face hub's `uoft-cs/cifar10` through `datasets` (its cache honoured; cache-only when the
hub cannot be reached), or a local copy (`task.path`) in the hub's parquet layout, what `huggingface-cli
download uoft-cs/cifar10 --repo-type dataset` fetches: plain_text/train-00000-of-00001.parquet (50,000 images)
and plain_text/test-00000-of-00001.parquet (10,000), columns `img` (datasets' Image: a struct of PNG `bytes` and
`path`) and `label` (0-9), as the dataset card lists them (config plain_text, features img and label). Any
*train*/*test* parquet files under the folder are read. Neither to be had is a one-line error: no subset ships.

Protocol: 5,000 validation images carved from the 50,000 training ones by a fixed seed (`n_val`; as S4's 45k/5k,
which draws them with torch's random_split and seed 42, and LRA's 90%/10%, which takes the last 5,000 in file
order: other images than ours), the 10,000 test images as the test set. Pixels in row-major scan order (as S4
and LRA). `channels: gray` (the default, LRA's Image task): tf.image.rgb_to_grayscale's ITU-R 601 weights
(0.2989, 0.5870, 0.1140) on x/255, back to 8 bits as TensorFlow converts (truncating g * 255.5), one input per
step. `channels: rgb` (variant "rgb"; the 3-channel sCIFAR of the S4 and LRU tables): the three channels at
each step. `scale: unit` gives x/255 in [0, 1]; `scale: standard` normalises as S4's example.py does (gray:
mean 122.6/255, std 61.0/255; rgb: mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010) per channel).

Where ours differs: LRA feeds the 8-bit gray intensities as tokens into a learned embedding (256 entries); we feed
each intensity as one float (x/255 or standardised), so a model cannot learn a free vector per intensity. No
data augmentation (as S4's sequence models). Memory on the device: 1,024 float32 steps a channel, 4 KiB an image
in gray (245 MB for the 60,000), 12 KiB in rgb (737 MB); `max_train`/`max_eval` cap the images.
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from pydantic import field_validator
from pydantic.dataclasses import dataclass

from suite.errors import UserError
from suite.schema import STRICT, PosInt
from tasks import _hub as hub
from tasks.base import Task

HF_REPO = "uoft-cs/cifar10"
SPLIT_SEED = 12_345
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # tf.image.rgb_to_grayscale's (ITU-R 601)
STANDARD = {"gray": ((122.6 / 255,), (61.0 / 255,)),  # S4 example.py's Normalize arguments
            "rgb": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))}


@dataclass(config=STRICT)
class ScifarConfig:
    source: Literal["auto", "hf", "local"] = "auto"  # auto: `path` if set, else the HF hub/cache
    path: str | None = None  # folder (or file) holding uoft-cs/cifar10's train/test parquet files
    channels: Literal["gray", "rgb"] = "gray"  # gray: LRA's Image task (1 input); rgb: S4/LRU's sCIFAR (3 inputs)
    scale: Literal["unit", "standard"] = "unit"  # unit: x/255 in [0, 1]; standard: S4's mean/std normalisation
    n_val: PosInt = 5_000  # validation images carved from the training ones by a fixed seed (S4: 5,000)
    max_train: PosInt | None = None  # train on this many images only (a fixed, seeded subset)
    max_eval: PosInt | None = None  # validate and test on this many images only (fixed, seeded subsets)

    _path_read = field_validator("path")(hub.read_only_locally)  # set beside another source, refused


def _from_datasets(dd) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A datasets.DatasetDict in the uoft-cs/cifar10 schema (img, label) to uint8 (N, 32, 32, 3) and int64."""
    import datasets

    out = {}
    for split in ("train", "test"):
        if split not in dd:
            raise UserError(f"task.path: no '{split}' split found in the CIFAR-10 data (have: {', '.join(dd)})")
        ds = dd[split]
        if not {"img", "label"} <= set(ds.column_names):
            raise UserError(f"task.path: the CIFAR-10 {split} split has columns {', '.join(ds.column_names)}; "
                            "expected img and label (uoft-cs/cifar10's)")
        if not isinstance(ds.features["img"], datasets.Image):  # a plain {bytes, path} struct: decode it as one
            ds = ds.cast_column("img", datasets.Image())
        columns = ds.with_format("numpy")[:]  # decodes every image once
        images = np.stack(columns["img"])
        if images.shape[1:] != (32, 32, 3) or images.dtype != np.uint8:
            raise UserError(f"task.path: CIFAR-10 {split} images are {images.dtype} {images.shape[1:]}; "
                            "expected 32x32 RGB 8-bit")
        out[split] = images, hub.labels(columns["label"], 10, "CIFAR-10", split)
    return out


DATA = hub.HubData(HF_REPO, "CIFAR-10", _from_datasets,
                   lambda path: hub.parquet_copy(path, HF_REPO, _from_datasets),
                   lambda path: hub.parquet_layout(path, HF_REPO),
                   "the folder holding uoft-cs/cifar10's parquet files",
                   "set task.path to a local copy (the hub's parquet files)")


def load_cifar(cfg: ScifarConfig) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str]:
    """uint8 RGB images (N, 32, 32, 3) and int64 labels for train/val/test, and the data_source tag."""
    splits, tag = hub.source_of(cfg, DATA)
    return hub.held_out(splits, cfg, SPLIT_SEED, "images"), tag


def to_gray(images: np.ndarray, chunk: int = 4_096) -> np.ndarray:
    """(N, 32, 32, 3) uint8 to (N, 32, 32) uint8 as tf.image.rgb_to_grayscale does it: float32 x/255, the
    weighted sum, then TensorFlow's float-to-uint8 conversion (truncating g * 255.5). In chunks: float copies of
    all 50,000 images would be 600 MB."""
    weights = np.asarray(GRAY_WEIGHTS, dtype=np.float32)
    out = np.empty(images.shape[:-1], dtype=np.uint8)
    for i in range(0, len(images), chunk):
        g = (images[i:i + chunk].astype(np.float32) / np.float32(255)) @ weights
        out[i:i + chunk] = (g * np.float32(255.5)).astype(np.uint8)
    return out


class Scifar(Task):
    """Classify a CIFAR-10 image from its 1,024 pixels in scan-line order (gray, or the three channels)."""

    name = "scifar"
    Config = ScifarConfig
    output_kind = "class_last"
    n_outputs = 10
    metric_definition = "accuracy over the 10,000 CIFAR-10 test images"
    steps = 1024

    @property
    def input_size(self):
        return 3 if self.cfg.channels == "rgb" else 1

    @property
    def seq_len(self):
        return self.steps

    def chance_loss(self):
        return math.log(10)  # CIFAR-10's classes are balanced (5,000 train and 1,000 test images each)

    def chance_metric(self):
        return 0.1

    def train_examples(self):
        return self.cfg.max_train or 50_000 - self.cfg.n_val

    def variant(self):
        return "rgb" if self.cfg.channels == "rgb" else ""

    def check(self):
        load_cifar(self.cfg)  # cached: the runs use what this loaded

    def check_files(self):
        hub.check_files(self.cfg, DATA)

    def splits(self, n_val, n_test, device):
        arrays, _ = load_cifar(self.cfg)
        return {s: (self.sequences(x, device), torch.from_numpy(y).to(device)) for s, (x, y) in arrays.items()}

    def sequences(self, images: np.ndarray, device) -> torch.Tensor:
        """uint8 (N, 32, 32, 3) to float (N, 1024, channels) on the device, scaled as the settings ask."""
        pixels = to_gray(images)[..., None] if self.cfg.channels == "gray" else images
        x = torch.from_numpy(np.ascontiguousarray(pixels)).to(device=device, dtype=torch.float32).div_(255)
        if self.cfg.scale == "standard":
            mean, std = STANDARD[self.cfg.channels]
            x = x.sub_(torch.tensor(mean, device=device)).div_(torch.tensor(std, device=device))
        return x.reshape(len(images), self.steps, self.input_size)  # row-major: row 0's 32 pixels first

    def data_source(self):
        return hub.source_of(self.cfg, DATA)[1]  # each source loaded once per process

    def describe(self):
        if self.cfg.scale == "unit":
            pixels = "x/255 in [0, 1]"
        else:
            mean, std = STANDARD[self.cfg.channels]
            pixels = f"(x/255 - {', '.join(f'{m:.4f}' for m in mean)}) / {', '.join(f'{s:.4f}' for s in std)}"
        return {**super().describe(), "channels": self.cfg.channels, "pixels": pixels,
                "grayscale": "tf.image.rgb_to_grayscale (0.2989, 0.5870, 0.1140)" if self.cfg.channels == "gray"
                else "none", "validation": f"{self.cfg.n_val} of the train images, seed {SPLIT_SEED}"}
