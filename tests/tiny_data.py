"""Tiny copies of the hub's data sets, written in the hub's parquet layout, for the dataset tasks' tests:
uoft-cs/cifar10 (plain_text/{split}-00000-of-00001.parquet: img as PNG, label) and stanfordnlp/imdb
(plain_text/{split}-00000-of-00001.parquet: text, label; plus the unlabelled unsupervised split)."""
import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np

CIFAR_SIZES = {"train": 40, "test": 12}
IMDB_SIZES = {"train": 30, "test": 10, "unsupervised": 4}


def cifar_images(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)


def write_cifar(root: Path, sizes=CIFAR_SIZES) -> dict:
    import datasets
    from PIL import Image

    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=[str(i) for i in range(10)])})
    folder, written = Path(root) / "plain_text", {}
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in sizes.items():
        images, labels = cifar_images(n, seed=len(split))
        ds = datasets.Dataset.from_dict({"img": [Image.fromarray(i) for i in images], "label": labels.tolist()},
                                        features=features)
        ds.to_parquet(str(folder / f"{split}-00000-of-00001.parquet"))
        written[split] = images, labels
    return written


def reviews(n, seed):
    rng = np.random.default_rng(seed)
    words = ["good", "bad", "film", "plot", "é", "naïve", "\u2014", "a", "the"]  # some multi-byte UTF-8
    texts = [" ".join(rng.choice(words, rng.integers(1, 40))) for _ in range(n)]
    return texts, rng.integers(0, 2, n)


def write_imdb(root: Path, sizes=IMDB_SIZES) -> dict:
    import datasets

    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    folder, written = Path(root) / "plain_text", {}
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in sizes.items():
        texts, labels = reviews(n, seed=len(split))
        if split == "unsupervised":
            labels = np.full(n, -1)
            features = datasets.Features({"text": datasets.Value("string"), "label": datasets.Value("int64")})
        datasets.Dataset.from_dict({"text": texts, "label": labels.tolist()}, features=features).to_parquet(
            str(folder / f"{split}-00000-of-00001.parquet"))
        written[split] = texts, labels
    return written


@functools.cache
def copy_of(name: str) -> str:
    """A tiny local copy for a dataset task (written once a process): the folder to set as task.path."""
    root = Path(tempfile.mkdtemp(prefix=f"rnnbench-{name}-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    {"scifar": write_cifar, "lra_text": write_imdb}[name](root)
    return str(root)


def tiny_settings(name: str) -> dict:
    """Settings of a dataset task that read its tiny copy (a validation set the copy can give)."""
    return {"scifar": {"path": copy_of("scifar"), "n_val": 8},
            "lra_text": {"path": copy_of("lra_text"), "n_val": 6, "seq_len": 64}}[name]
