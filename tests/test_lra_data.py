"""The hub data sets' tasks, scifar (uoft-cs/cifar10) and lra_text (stanfordnlp/imdb): the real loaders on tiny
copies in the hub's parquet layout, the one-line error when neither the hub nor a copy can be had, and a cell of
each through the CLI."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from suite.cli import main
from suite.errors import UserError
from tasks.lra_text import LraText, LraTextConfig, load_imdb
from tasks.scifar import Scifar, ScifarConfig, load_cifar
from tests.tiny_data import CIFAR_SIZES, IMDB_SIZES, copy_of, write_cifar, write_imdb

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    return root, write_cifar(root)


@pytest.fixture(scope="module")
def imdb(tmp_path_factory):
    root = tmp_path_factory.mktemp("imdb")
    return root, write_imdb(root)


def test_cifar_parquet_in_the_hub_schema_loads_and_carves_a_seeded_validation_set(cifar):
    root, written = cifar
    splits, source = load_cifar(ScifarConfig(path=str(root), n_val=10))
    assert source == f"local:{root}"
    assert [len(splits[s][1]) for s in ("train", "val", "test")] == [CIFAR_SIZES["train"] - 10, 10, CIFAR_SIZES["test"]]
    np.testing.assert_array_equal(splits["test"][0], written["test"][0])  # PNG round trip: lossless
    np.testing.assert_array_equal(splits["test"][1], written["test"][1])
    both = np.concatenate([splits["train"][1], splits["val"][1]])
    assert sorted(both.tolist()) == sorted(written["train"][1].tolist())
    again, _ = load_cifar(ScifarConfig(path=str(root), n_val=10))
    np.testing.assert_array_equal(again["val"][0], splits["val"][0])  # the same images every time


def test_gray_is_tensorflows_rgb_to_grayscale_in_row_major_order(cifar):
    root, written = cifar
    x = Scifar(ScifarConfig(path=str(root), n_val=10)).splits(1, 1, "cpu")["test"][0]
    rgb = written["test"][0].astype(np.float64)
    gray = np.floor((rgb / 255 @ np.array([0.2989, 0.5870, 0.1140])) * 255.5)  # tf.image's, then its uint8 cast
    assert x.shape == (CIFAR_SIZES["test"], 1024, 1)
    assert np.abs(x[..., 0].numpy() * 255 - gray.reshape(-1, 1024)).max() <= 1.0 + 1e-3  # float32 vs float64
    assert torch.allclose(x * 255, (x * 255).round(), atol=1e-3) and 0 <= x.min() and x.max() <= 1  # 8-bit gray


def test_rgb_is_a_distinct_variant_with_three_inputs_and_s4s_normalisation(cifar):
    root, written = cifar
    gray, rgb = Scifar(ScifarConfig(path=str(root))), Scifar(ScifarConfig(path=str(root), channels="rgb"))
    assert (gray.variant(), rgb.variant(), gray.input_size, rgb.input_size) == ("", "rgb", 1, 3)
    x = Scifar(ScifarConfig(path=str(root), n_val=10, channels="rgb")).splits(1, 1, "cpu")["test"][0]
    expected = torch.from_numpy(written["test"][0].reshape(-1, 1024, 3).astype(np.float32) / 255)
    assert torch.allclose(x, expected)  # pixel (r, c) at step 32 r + c, channels at each step
    z = Scifar(ScifarConfig(path=str(root), n_val=10, channels="rgb", scale="standard")).splits(1, 1, "cpu")["test"][0]
    mean, std = torch.tensor([0.4914, 0.4822, 0.4465]), torch.tensor([0.2023, 0.1994, 0.2010])
    assert torch.allclose(z, (x - mean) / std, atol=1e-5)
    assert rgb.describe()["channels"] == "rgb" and gray.describe()["grayscale"].startswith("tf.image")


def test_imdb_reviews_are_their_utf8_bytes_left_padded_and_truncated(imdb):
    root, written = imdb
    task = LraText(LraTextConfig(path=str(root), n_val=5, seq_len=48))
    splits = task.splits(1, 1, "cpu")
    assert {s: len(y) for s, (_, y) in splits.items()} == {"train": IMDB_SIZES["train"] - 5, "val": 5,
                                                          "test": IMDB_SIZES["test"]}  # unsupervised not read
    x, y = splits["test"]
    assert x.shape == (IMDB_SIZES["test"], 48, 9) and set(x.unique().tolist()) <= {0.0, 1.0}
    np.testing.assert_array_equal(y.numpy(), written["test"][1])
    weights = 2 ** torch.arange(8, dtype=torch.float32)
    for row, text in zip(x, written["test"][0], strict=True):
        raw = text.encode("utf-8")[:48]  # the first 48 bytes, as LRA's inputs[:max_length]
        real = row[:, 8].bool()
        assert real.sum() == len(raw) and real[-len(raw):].all()  # padding on the left, the review ends at T
        assert bytes((row[real, :8] @ weights).int().tolist()) == raw
        assert (row[~real] == 0).all()
    assert any(len(t.encode("utf-8")) > 48 for t in written["test"][0])  # truncation was exercised
    assert any(len(t.encode("utf-8")) != len(t) for t in written["test"][0])  # and multi-byte characters


def test_imdb_chance_is_the_label_frequencies(imdb):
    root, _ = imdb
    task = LraText(LraTextConfig(path=str(root), n_val=5))
    y = load_imdb(task.cfg)[0]["train"][1]
    p = np.bincount(y, minlength=2) / len(y)
    assert np.isclose(task.chance_loss(), -(p * np.log(p)).sum()) and task.chance_metric() == p.max()
    default = LraText(LraTextConfig())
    assert default.seq_len == 4096 and default.train_examples() == 22_500  # LRA's 4K; 25,000 less validation


@pytest.mark.parametrize("cls", [Scifar, LraText])
def test_a_bad_local_copy_is_a_clear_error_before_any_run(tmp_path, cls):
    with pytest.raises(UserError, match="task.path.*does not exist"):
        cls(cls.Config(source="local", path=str(tmp_path / "nope"))).check()
    with pytest.raises(UserError, match="task.path.*no train and test parquet files"):
        cls(cls.Config(path=str(tmp_path))).check()
    with pytest.raises(UserError, match="task.path: source 'local' needs"):
        cls(cls.Config(source="local")).check()
    with pytest.raises(UserError, match="task.n_val"):
        cls(cls.Config(path=copy_of(cls.name), n_val=10_000)).check()
    (tmp_path / "train-0.parquet").write_bytes(b"junk")
    (tmp_path / "test-0.parquet").write_bytes(b"junk")
    with pytest.raises(UserError, match="task.path.*is not readable"):
        cls(cls.Config(path=str(tmp_path))).check()


def test_the_wrong_columns_are_named(tmp_path):
    import datasets

    for split in ("train", "test"):
        datasets.Dataset.from_dict({"image": [b"x"], "label": [0]}).to_parquet(str(tmp_path / f"{split}.parquet"))
    with pytest.raises(UserError, match="columns image, label; expected img and label"):
        Scifar(ScifarConfig(path=str(tmp_path))).check()


@pytest.mark.parametrize("task,repo", [("scifar", "uoft-cs/cifar10"), ("lra_text", "stanfordnlp/imdb")])
def test_no_hub_and_no_copy_is_one_line_and_no_run(tmp_path, task, repo):
    """Offline with an empty cache: one line naming the field and the fix, exit 2, nothing recorded."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env |= {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_CACHE": str(tmp_path / "hf/datasets"),
            "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}  # this checkout
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"models: [rnn]\ntasks: {{{task}: {{}}}}\n")
    out = subprocess.run([sys.executable, "-m", "suite", "run", "--config", str(cfg), "--model", "rnn", "--task", task],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr
    assert (f"task.source: could not load {repo} from the hub or cache (" in out.stderr
            and "set task.path to a local copy (the hub's parquet files)" in out.stderr)
    assert not (tmp_path / "mlflow.db").exists()


def test_a_cell_of_each_runs_end_to_end_on_the_tiny_copies(tmp_path, in_store):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"""models: [rnn]
seeds: [0]
recipe: {{pinned: true}}
model: {{hidden_size: 8}}
train: {{epochs: 1, steps_per_epoch: 2, batch_size: 8, eval_batch_size: 64, warmup_steps: 0}}
tasks:
  scifar: {{path: '{copy_of("scifar")}', n_val: 8, channels: rgb}}
  lra_text: {{path: '{copy_of("lra_text")}', n_val: 6, seq_len: 64}}
""")
    assert main(["benchmark", "--config", str(cfg), "--tracking-uri", in_store, "--experiment", "t-lra-data"]) == 0
    exp = MlflowClient(in_store).get_experiment_by_name("t-lra-data")
    found = {r.data.tags["task"]: r for r in MlflowClient(in_store).search_runs([exp.experiment_id])}
    assert set(found) == {"scifar", "lra_text"} and all(r.info.status == "FINISHED" for r in found.values())
    scifar, text = found["scifar"], found["lra_text"]
    assert scifar.data.tags["data_source"] == f"local:{copy_of('scifar')}" and scifar.data.tags["seq_len"] == "1024"
    assert scifar.data.tags.get("variant") == "rgb" and scifar.data.params["task.channels"] == "rgb"
    assert text.data.tags["data_source"] == f"local:{copy_of('lra_text')}" and text.data.tags["seq_len"] == "64"
    assert "test_acc" in scifar.data.metrics and "test_acc" in text.data.metrics


def test_the_cpu_lra_profile_runs_each_long_range_task_on_the_tiny_copies(tmp_path, in_store):
    """The CPU-sized setting of sCIFAR, LRA's ListOps grammar and IMDb bytes (configs/profiles/cpu-lra.yaml):
    the full profile's long-range code paths, end to end, on data the test writes."""
    sets = [f"tasks.scifar.path={copy_of('scifar')}", "tasks.scifar.n_val=8",
            f"tasks.lra_text.path={copy_of('lra_text')}", "tasks.lra_text.n_val=6",
            "tasks.listops.n_train=256", "tasks.listops.n_eval=64", "train.steps_per_epoch=2", "train.epochs=1"]
    argv = ["benchmark", "--profile", "cpu-lra", "--models", "rnn", "--tracking-uri", in_store,
            "--experiment", "t-cpu-lra", *[a for s in sets for a in ("--set", s)]]
    assert main(argv) == 0
    client = MlflowClient(in_store)
    runs = client.search_runs([client.get_experiment_by_name("t-cpu-lra").experiment_id])
    found = {r.data.tags["task"]: r for r in runs}
    assert set(found) == {"scifar", "listops", "lra_text"} and all(r.info.status == "FINISHED" for r in runs)
    assert found["listops"].data.params["task.max_depth"] == "10" and found["lra_text"].data.tags["seq_len"] == "512"
