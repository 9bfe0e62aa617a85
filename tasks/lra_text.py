"""LRA Text: the sentiment (negative 0, positive 1) of an IMDb review read byte by byte, classified at the end
(Long Range Arena's byte-level text classification, Tay et al. 2021).

Source: the Hugging Face hub's `stanfordnlp/imdb` through `datasets` (its cache honoured; cache-only when the hub
cannot be reached), or a local copy (`task.path`) in the hub's parquet layout, what `huggingface-cli download
stanfordnlp/imdb --repo-type dataset` fetches: plain_text/train-00000-of-00001.parquet (25,000 reviews),
plain_text/test-00000-of-00001.parquet (25,000) and plain_text/unsupervised-00000-of-00001.parquet (50,000
unlabelled, not read), columns `text` (a string) and `label` (ClassLabel neg/pos), as the dataset card lists
them (config plain_text). Any *train*/*test* parquet files under the folder are read. Neither to be had is a
one-line error: no subset ships.

Protocol: each review's UTF-8 bytes, the first `seq_len` of them (LRA's tokenize keeps inputs[:max_length]);
`seq_len` defaults to 4,096: LRA's "4K", and the l_max of S4's configs/dataset/imdb.yaml (read in a fork of
state-spaces/s4, not the original). LRA's own text_classification/configs/base_tc_config.py sets max_length = 1000
in the version read (train.py passes config.max_length to the pipeline); the paper's 4K must come from an
override we did not find in the repository, so LRA's exact length (4,000 or 4,096) is unverified.
Validation: 2,500 reviews (`n_val`) carved from the 25,000 training ones by a fixed seed (LRA and S4 validate
on the test set, having no validation split); the 25,000 test reviews are the test set.

Inputs: LRA embeds byte tokens (a vocabulary of 256 plus padding); a one-hot of that per step would be ~100 GB
for the training reviews, so each step here is 9 features: the byte's 8 bits (least significant first, 0/1) and
a 9th that is 1 for a real byte and 0 for padding (a NUL byte is then told from padding). Padding is on the left
(LRA pads at the end), so every review ends at the last step, which the class_last head reads (as
tasks/listops.py does). Memory on the device: 4,096 x 9 float32 = 144 KiB a review; the 22,500 training reviews
take 3.3 GB, validation 0.4 GB and the 25,000 test reviews 3.7 GB: `max_train`/`max_eval` cap them.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import field_validator
from pydantic.dataclasses import dataclass

from suite.errors import UserError
from suite.schema import STRICT, PosInt
from tasks import _hub as hub
from tasks.base import Task

HF_REPO = "stanfordnlp/imdb"
SPLIT_SEED = 12_345
FEATURES = 9  # 8 bit-planes and a real-byte marker


@dataclass(config=STRICT)
class LraTextConfig:
    source: Literal["auto", "hf", "local"] = "auto"  # auto: `path` if set, else the HF hub/cache
    path: str | None = None  # folder (or file) holding stanfordnlp/imdb's train/test parquet files
    seq_len: PosInt = 4_096  # T: a review's first T bytes, left-padded to T (LRA: 4K)
    n_val: PosInt = 2_500  # validation reviews carved from the training ones by a fixed seed
    max_train: PosInt | None = None  # train on this many reviews only (a fixed, seeded subset)
    max_eval: PosInt | None = None  # validate and test on this many reviews only (fixed, seeded subsets)

    _path_read = field_validator("path")(hub.read_only_locally)  # set beside another source, refused


def _from_datasets(dd) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A datasets.DatasetDict in the stanfordnlp/imdb schema (text, label) to UTF-8 bytes (an object array of
    `bytes`) and int64 labels; the unsupervised split is left out."""
    out = {}
    for split in ("train", "test"):
        if split not in dd:
            raise UserError(f"task.path: no '{split}' split found in the IMDb data (have: {', '.join(dd)})")
        ds = dd[split]
        if not {"text", "label"} <= set(ds.column_names):
            raise UserError(f"task.path: the IMDb {split} split has columns {', '.join(ds.column_names)}; "
                            "expected text and label (stanfordnlp/imdb's)")
        texts = np.empty(len(ds), dtype=object)
        texts[:] = [t.encode("utf-8") for t in ds["text"]]
        out[split] = texts, hub.labels(ds["label"], 2, "IMDb", split)
    return out


DATA = hub.HubData(HF_REPO, "IMDb", _from_datasets,
                   lambda path: hub.parquet_copy(path, HF_REPO, _from_datasets),
                   lambda path: hub.parquet_layout(path, HF_REPO),
                   "the folder holding stanfordnlp/imdb's parquet files",
                   "set task.path to a local copy (the hub's parquet files)")


def load_imdb(cfg: LraTextConfig) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str]:
    """Reviews as UTF-8 bytes and int64 labels for train/val/test, and the data_source tag."""
    splits, tag = hub.source_of(cfg, DATA)
    return hub.held_out(splits, cfg, SPLIT_SEED, "reviews"), tag


def to_tokens(texts, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Each text's first seq_len bytes, right-aligned in a uint8 (N, seq_len) array, and how many are real."""
    tokens, lengths = np.zeros((len(texts), seq_len), dtype=np.uint8), np.zeros(len(texts), dtype=np.int64)
    for i, raw in enumerate(texts):
        raw = raw[:seq_len]
        lengths[i] = len(raw)
        if raw:
            tokens[i, seq_len - len(raw):] = np.frombuffer(raw, dtype=np.uint8)
    return tokens, lengths


def to_features(tokens: np.ndarray, lengths: np.ndarray, device, chunk: int = 512) -> torch.Tensor:
    """(N, T) bytes to float (N, T, 9) on the device: bit k of the byte in feature k, 1.0 in feature 8 at a real
    byte. Filled in chunks, so no wider intermediate than a chunk's is made."""
    n, T = tokens.shape
    out = torch.empty(n, T, FEATURES, device=device)
    shifts = torch.arange(8, dtype=torch.uint8, device=device)
    steps = torch.arange(T, device=device)
    for i in range(0, n, chunk):
        t = torch.from_numpy(tokens[i:i + chunk]).to(device)
        out[i:i + chunk, :, :8] = (t.unsqueeze(-1) >> shifts) & 1
        real = torch.from_numpy(lengths[i:i + chunk]).to(device)
        out[i:i + chunk, :, 8] = steps >= T - real.unsqueeze(1)
    return out


class LraText(Task):
    """Classify an IMDb review's sentiment from its bytes; a blind guess scores the labels' entropy."""

    name = "lra_text"
    Config = LraTextConfig
    output_kind = "class_last"
    input_size = FEATURES
    n_outputs = 2
    horizon = (1_024, 2_048, 4_096)
    metric_definition = "accuracy over the 25,000 IMDb test reviews"

    def _train_labels(self) -> np.ndarray:
        return load_imdb(self.cfg)[0]["train"][1]

    def chance_loss(self):
        p = np.bincount(self._train_labels(), minlength=2) / len(self._train_labels())
        return float(-(p[p > 0] * np.log(p[p > 0])).sum())  # the best blind guess: the labels' frequencies

    def chance_metric(self):
        y = self._train_labels()
        return float(np.bincount(y, minlength=2).max() / len(y))  # always guessing the commoner label

    def train_examples(self):
        return self.cfg.max_train or 25_000 - self.cfg.n_val

    def check(self):
        load_imdb(self.cfg)  # cached: the runs use what this loaded

    def check_files(self):
        hub.check_files(self.cfg, DATA)

    def splits(self, n_val, n_test, device):
        arrays, _ = load_imdb(self.cfg)
        return {s: (to_features(*to_tokens(x, self.cfg.seq_len), device), torch.from_numpy(y).to(device))
                for s, (x, y) in arrays.items()}

    def data_source(self):
        return hub.source_of(self.cfg, DATA)[1]  # each source loaded once per process

    def describe(self):
        return {**super().describe(), "bytes": f"UTF-8, the first {self.cfg.seq_len}, left-padded",
                "features": "8 bits (LSB first) + real-byte marker",
                "validation": f"{self.cfg.n_val} of the train reviews, seed {SPLIT_SEED}"}

