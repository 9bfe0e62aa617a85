"""The MNIST loader: through `datasets` on a parquet file in the ylecun/mnist schema, IDX files, the 5k subset."""
import gzip

import numpy as np
import pytest

from suite.errors import UserError
from tasks._mnist import MnistConfig, _load_5k, load_mnist


def fake_digits(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n)


def test_parquet_in_the_hub_schema_loads_through_datasets(tmp_path):
    import datasets
    from PIL import Image

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(i) for i in range(10)])})
    expected = {}
    for split, n in (("train", 5_020), ("test", 30)):  # > 5,000 so a validation split can be carved
        images, labels = fake_digits(n, seed=len(split))
        ds = datasets.Dataset.from_dict({"image": [Image.fromarray(i) for i in images], "label": labels.tolist()},
                                        features=features)
        (tmp_path / "mnist").mkdir(exist_ok=True)
        ds.to_parquet(str(tmp_path / "mnist" / f"{split}-00000-of-00001.parquet"))
        expected[split] = images, labels
    splits, source = load_mnist(MnistConfig(source="local", path=str(tmp_path)))
    assert source == f"local:{tmp_path}"
    assert [len(splits[s][1]) for s in ("train", "val", "test")] == [20, 5_000, 30]
    np.testing.assert_array_equal(splits["test"][0], expected["test"][0])
    np.testing.assert_array_equal(splits["test"][1], expected["test"][1])
    # train + val is the original train split, reordered
    both = np.concatenate([splits["train"][1], splits["val"][1]])
    assert sorted(both.tolist()) == sorted(expected["train"][1].tolist())


def _write_idx(path, array, gz):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    (gzip.open if gz else open)(path, "wb").write(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_load(tmp_path, gz):
    data = {}
    for prefix, n in (("train", 5_010), ("t10k", 10)):
        images, labels = fake_digits(n, seed=n)
        suffix = ".gz" if gz else ""
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte{suffix}", images, gz)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz)
        data[prefix] = images, labels
    splits, _ = load_mnist(MnistConfig(source="local", path=str(tmp_path), max_train=7))
    np.testing.assert_array_equal(splits["test"][0], data["t10k"][0])
    assert splits["test"][1].dtype == np.int64 and len(splits["train"][1]) == 7


def test_the_shipped_5k_subset_is_split_stratified_and_seeded():
    splits = _load_5k()
    for split, per_class in (("train", 350), ("val", 50), ("test", 100)):
        x, y = splits[split]
        assert x.shape == (per_class * 10, 28, 28) and x.dtype == np.uint8 and x.max() > 200
        assert np.bincount(y, minlength=10).tolist() == [per_class] * 10
    all_images = np.concatenate([splits[s][0].reshape(-1, 784) for s in splits])
    assert len(np.unique(all_images, axis=0)) > 4_900  # the splits do not overlap


def test_offline_auto_falls_back_to_the_5k_subset_and_says_so():
    _, source = load_mnist(MnistConfig(source="auto"))
    assert source == "mnist-5k"  # HF_HUB_OFFLINE is set for the tests and nothing is cached


def test_offline_hf_without_cache_is_a_clear_error():
    with pytest.raises(UserError, match="task.source.*ylecun/mnist.*task.path"):
        load_mnist(MnistConfig(source="hf"))


def test_a_missing_local_path_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="task.path.*does not exist"):
        load_mnist(MnistConfig(source="local", path=str(tmp_path / "nope")))
    with pytest.raises(UserError, match="neither"):
        load_mnist(MnistConfig(source="local", path=str(tmp_path)))


def test_a_capped_load_leaves_the_cached_digits_whole():
    first, _ = load_mnist(MnistConfig(source="mnist-5k", max_train=64, max_eval=32))
    again, _ = load_mnist(MnistConfig(source="mnist-5k"))
    assert len(first["val"][1]) == 32 and len(again["val"][1]) == 500 and len(again["train"][1]) == 3500
    np.testing.assert_array_equal(again["train"][1], _load_5k()["train"][1])
