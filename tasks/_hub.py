"""What the dataset tasks share (MNIST, CIFAR-10, IMDb): a Hugging Face hub dataset through `datasets` (its
cache honoured, cache-only when the hub is unreachable, the failure remembered), or a local copy in the hub's
parquet layout, chosen by a task's `source` and `path` settings; messages name the field and the fix."""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import socket
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import numpy as np
from pydantic_core import PydanticCustomError

from suite.errors import UserError, one_line


@dataclasses.dataclass(frozen=True)
class HubData:
    """One data set as the loaders see it; `convert` turns a datasets.DatasetDict into the task's arrays,
    `read_local` a resolved path into the same (cached by the caller: it is called once per path), after
    `layout`, which finds the files it reads there without reading them (a one-line UserError when they are not
    there), as the dry run checks a copy."""

    repo: str  # e.g. "uoft-cs/cifar10"
    name: str  # in messages: "MNIST", "CIFAR-10"
    convert: Callable
    read_local: Callable
    layout: Callable
    local_what: str  # "the folder holding MNIST (parquet or IDX files)"
    hf_fix: str  # what the hub failure's message advises: "set task.path to a local copy ..."


def read_only_locally(cls, path, info):
    """A field validator of a dataset task's `path`: read only from a local copy (source local, or auto), so set
    beside source hf (or mnist-5k) it would be ignored without a word; refused where the settings are checked."""
    source = info.data.get("source")
    if path is not None and source not in (None, "auto", "local"):
        raise PydanticCustomError("path_unread", "read only when task.source is local or auto (it is {source}); set "
                                  "task.source=local or drop task.path", {"source": source})
    return path


def local_path(cfg, data: HubData) -> str | None:
    """The local copy the settings ask for (`source` local, or auto with a `path`), resolved; None for the hub
    (or another source of the task's own). A path that cannot be resolved (a symlink loop) is one line."""
    if cfg.source != "local" and not (cfg.source == "auto" and cfg.path):
        return None
    if not cfg.path:
        raise UserError(f"task.path: source 'local' needs {data.local_what}")
    try:
        return str(Path(cfg.path).expanduser().resolve())
    except (RuntimeError, OSError) as e:  # a symlink loop: RuntimeError before Python 3.13, OSError (ELOOP) after
        raise UserError(f"task.path: {cfg.path} cannot be resolved ({one_line(e)[:200]}); point it at "
                        f"{data.local_what}") from None


def check_files(cfg, data: HubData):
    """What the dry run checks of the data, without reading it: the local copy the settings ask for is there and
    laid out as the loader reads it (the hub is only asked by loading it)."""
    path = local_path(cfg, data)
    if path:
        data.layout(path)


def source_of(cfg, data: HubData, fallback: Callable | None = None):
    """The data the settings ask for (`source`: auto, hf or local; auto: `path` if set, else the hub/cache) and
    its data_source tag, local:PATH or hf:REPO. A hub failure under auto goes to `fallback(error)` where there
    is one (MNIST's shipped subset), else it is the same one-line UserError as under `source: hf`."""
    path = local_path(cfg, data)
    if path:
        try:
            return data.read_local(path), f"local:{cfg.path}"
        except UserError:
            raise
        except Exception as e:  # a corrupt or truncated file, whatever library reads it
            raise UserError(f"task.path: {cfg.path} is not readable {data.name} ({one_line(e)[:250]})") from None
    try:
        return load_hf(data.repo, data.convert), f"hf:{data.repo}"
    except Exception as e:  # offline without a cached copy: any hub/network error lands here
        if cfg.source == "hf" or fallback is None:
            raise UserError(f"task.source: could not load {data.repo} from the hub or cache ({type(e).__name__}); "
                            f"{data.hf_fix}") from None
        return fallback(e)


def load_hf(repo: str, convert: Callable):
    outcome = try_hf(repo, convert)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


@functools.lru_cache(maxsize=4)
def try_hf(repo: str, convert: Callable):
    """The hub (or its cache), converted; the failure is cached too, so an offline process asks only once."""
    import datasets

    try:
        with quiet_datasets(offline=not hub_reachable()):
            return convert(datasets.load_dataset(repo))
    except Exception as e:
        return e


@contextlib.contextmanager
def quiet_datasets(offline: bool):
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


def hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    host = urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def files_under(path: str) -> list[Path]:
    """The file at `path`, or every file below the folder (what a local copy holds)."""
    p = Path(path)
    return [p] if p.is_file() else sorted(p.rglob("*"))


def parquet_files(files: list[Path], splits=("train", "test")) -> dict[str, list[str]]:
    """The parquet files of each split, by name (the hub's <split>-00000-of-00001.parquet); a split without
    any is left out."""
    found = {s: [str(f) for f in files if f.suffix == ".parquet" and s in f.name] for s in splits}
    return {s: f for s, f in found.items() if f}


def read_parquet(files: dict[str, list[str]], convert: Callable):
    """Local parquet files through `datasets` (its features, e.g. Image, read from the files' metadata)."""
    import datasets

    with quiet_datasets(offline=True):
        return convert(datasets.load_dataset("parquet", data_files=files))


def parquet_layout(path: str, repo: str) -> dict[str, list[str]]:
    """The train and test parquet files of a local copy in the hub's layout (`task.path`), found, not read."""
    if not Path(path).exists():
        raise UserError(f"task.path: {path} does not exist; point it at a folder with the {repo} parquet files")
    parquet = parquet_files(files_under(path))
    if len(parquet) < 2:
        raise UserError(f"task.path: {path} holds no train and test parquet files (the hub's "
                        "plain_text/train-*.parquet, plain_text/test-*.parquet)")
    return parquet


@functools.lru_cache(maxsize=8)
def parquet_copy(path: str, repo: str, convert: Callable):
    """A local copy in the hub's parquet layout (`task.path`), read by `convert` (each copy read once a process)."""
    return read_parquet(parquet_layout(path, repo), convert)


def labels(values, classes: int, name: str, split: str) -> np.ndarray:
    """A split's labels as int64, refused in one line unless they are integers in 0..classes-1 (a float label would
    be truncated to a class without a word)."""
    y = np.asarray(values)
    if len(y) and not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"task.path: {name} {split} labels are {y.dtype}; expected integers 0-{classes - 1}")
    if len(y) and (y.min() < 0 or y.max() >= classes):
        raise UserError(f"task.path: {name} {split} labels outside 0-{classes - 1} (found {y.min()}..{y.max()})")
    return y.astype(np.int64)


def held_out(splits: dict, cfg, seed: int, noun: str) -> dict:
    """The train split less a seeded validation set of cfg.n_val `noun`, then capped by cfg.max_train and
    cfg.max_eval (the splits of scifar and lra_text)."""
    splits = carve_val(splits, cfg.n_val, seed, "task.n_val", noun, "lower task.n_val")
    return capped(splits, cfg.max_train, cfg.max_eval, seed)


def carve_val(splits: dict, n_val: int, seed: int, field: str, noun: str, fix: str) -> dict:
    """A fixed validation set of n_val examples drawn (by `seed`) from the train split; the rest trains. Refused
    in one line naming `field` and the `fix` when none would be left to train on."""
    x, y = splits["train"]
    if n_val >= len(y):
        raise UserError(f"{field}: {n_val:,} validation {noun} leave none of the {len(y):,} training {noun}; {fix}")
    order = np.random.default_rng(seed).permutation(len(y))
    val, train = order[:n_val], order[n_val:]
    return {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": splits["test"]}


def capped(splits: dict, max_train: int | None, max_eval: int | None, seed: int) -> dict:
    """`max_train` / `max_eval` examples of the splits (fixed, seeded subsets); the cached arrays left whole."""
    splits = dict(splits)
    if max_train:
        splits["train"] = subset(*splits["train"], max_train, seed)
    if max_eval:
        splits["val"], splits["test"] = (subset(*splits[s], max_eval, seed) for s in ("val", "test"))
    return splits


def subset(x, y, cap: int, seed: int):
    keep = np.random.default_rng(seed).permutation(len(y))[:cap]
    return x[keep], y[keep]
