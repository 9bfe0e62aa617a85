"""Contract tests over the task registry, and each task's own targets and chance baseline."""
import math

import pytest
import torch

from tasks import TASKS
from tasks.adding import Adding, AddingConfig
from tasks.base import SyntheticTask
from tasks.copy import Copy, CopyConfig
from tests.tiny_data import tiny_settings


def small(name):
    cls = TASKS[name]
    if name in ("scifar", "lra_text"):  # hub data sets: a tiny local copy in the hub's layout
        return cls(cls.Config(**tiny_settings(name)))
    settings = {"seq_len": 30} if "seq_len" in cls.Config.__dataclass_fields__ else {"source": "mnist-5k"}
    return cls(cls.Config(**settings))


@pytest.mark.parametrize("name", list(TASKS))
def test_batches_have_declared_shapes_and_dtypes(name):
    task = small(name)
    splits = task.splits(16, 24, "cpu")
    for x, y in splits.values():
        assert x.dtype == torch.float32 and x.shape[1:] == (task.input_steps, task.input_size)
        assert torch.isfinite(x).all()
        if task.output_kind == "regress_last":
            assert y.dtype == torch.float32 and y.shape == (len(x), task.n_outputs)
        elif task.output_kind == "class_every":
            assert y.dtype == torch.long and y.shape == x.shape[:2] and 0 <= y.min() and y.max() < task.n_outputs
        else:
            assert y.dtype == torch.long and y.shape == (len(x),) and set(y.tolist()) <= set(range(task.n_outputs))
    assert {"val", "test"} <= set(splits)
    assert task.describe()["data_source"]


@pytest.mark.parametrize("name", [n for n, t in TASKS.items() if issubclass(t, SyntheticTask)])
def test_same_seed_same_batch_other_seed_other_batch(name):
    task = small(name)
    a = task.make_batch(8, torch.Generator().manual_seed(1), "cpu")
    b = task.make_batch(8, torch.Generator().manual_seed(1), "cpu")
    c = task.make_batch(8, torch.Generator().manual_seed(2), "cpu")
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize("name", [n for n, t in TASKS.items() if not issubclass(t, SyntheticTask)])
def test_dataset_tasks_are_deterministic(name):
    a, b = small(name).splits(1, 1, "cpu"), small(name).splits(1, 1, "cpu")
    assert all(torch.equal(a[s][i], b[s][i]) for s in a for i in (0, 1))


def test_adding_target_is_the_sum_of_the_two_marked_values():
    T = 50
    x, y = Adding(AddingConfig(seq_len=T)).make_batch(256, torch.Generator().manual_seed(0), "cpu")
    values, marker = x[..., 0], x[..., 1]
    assert torch.equal(marker.sum(1), torch.full((256,), 2.0))
    assert torch.equal(marker[:, : T // 2].sum(1), torch.ones(256))  # one marker in each half
    assert torch.equal(marker[:, T // 2:].sum(1), torch.ones(256))
    assert torch.allclose((values * marker).sum(1, keepdim=True), y)
    assert 0 <= values.min() and values.max() < 1


def test_copy_targets_are_the_first_ten_inputs_at_the_end():
    T = 40
    x, y = Copy(CopyConfig(seq_len=T)).make_batch(64, torch.Generator().manual_seed(0), "cpu")
    tokens = x.argmax(-1)
    assert x.shape == (64, T + 20, 10) and torch.equal(x.sum(-1), torch.ones(64, T + 20))  # one-hot
    assert ((tokens[:, :10] >= 1) & (tokens[:, :10] <= 8)).all()
    assert (tokens[:, 10:T + 9] == 0).all() and (tokens[:, T + 9] == 9).all() and (tokens[:, T + 10:] == 0).all()
    assert (y[:, : T + 10] == 0).all()
    assert torch.equal(y[:, -10:], tokens[:, :10])


def test_chance_baselines_match_the_formulas():
    for T in (1, 100, 1000):
        assert math.isclose(Copy(CopyConfig(seq_len=T)).chance_loss(), 10 * math.log(8) / (T + 20))
    assert math.isclose(Adding(AddingConfig()).chance_loss(), 1 / 6)
    assert math.isclose(small("mnist_rows").chance_loss(), math.log(10))


def test_chance_baselines_are_what_a_blind_predictor_scores():
    """A constant 1.0 on adding, and blanks-then-uniform-symbols on copy, score the stated chance loss."""
    _, y = Adding(AddingConfig(seq_len=20)).make_batch(200_000, torch.Generator().manual_seed(0), "cpu")
    assert math.isclose(((y - 1.0) ** 2).mean().item(), 1 / 6, rel_tol=0.01)
    copy = Copy(CopyConfig(seq_len=30))
    _, y = copy.make_batch(512, torch.Generator().manual_seed(0), "cpu")
    logits = torch.full((512, 50, copy.n_outputs), -1e4)
    logits[:, :40, 0] = 0  # blanks are certain
    logits[:, 40:, 1:] = 0  # uniform over the 8 symbols at recall
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
    assert math.isclose(loss.item(), copy.chance_loss(), rel_tol=1e-4)


def test_permuted_pixels_are_a_fixed_permutation():
    from tasks.mnist_pixels import MnistPixels

    plain = MnistPixels(MnistPixels.Config(source="mnist-5k")).splits(1, 1, "cpu")["test"][0]
    perm = MnistPixels(MnistPixels.Config(source="mnist-5k", permute=True)).splits(1, 1, "cpu")["test"][0]
    assert not torch.equal(plain, perm)
    assert torch.equal(plain.sort(1).values, perm.sort(1).values)  # same pixels, another order
    again = MnistPixels(MnistPixels.Config(source="mnist-5k", permute=True)).splits(1, 1, "cpu")["test"][0]
    assert torch.equal(perm, again)


def test_the_permutation_is_the_literatures_numpy_one():
    import numpy as np

    from tasks.mnist_pixels import MnistPixels

    task = MnistPixels(MnistPixels.Config(source="mnist-5k", permute=True))
    expected = np.random.RandomState(92916).permutation(784)  # expRNN's and scoRNN's
    np.testing.assert_array_equal(task.permutation(), expected)
    plain = MnistPixels(MnistPixels.Config(source="mnist-5k")).splits(1, 1, "cpu")["test"][0]
    permuted = task.splits(1, 1, "cpu")["test"][0]
    assert torch.equal(permuted, plain[:, torch.from_numpy(expected)])
    assert task.describe()["permute_source"] == "numpy.random.RandomState(92916).permutation(784)"


@pytest.mark.parametrize("name", ["mnist_rows", "mnist_pixels"])
def test_pixels_are_in_unit_range_by_default_and_standardised_on_request(name):
    cls = TASKS[name]
    x = cls(cls.Config(source="mnist-5k")).splits(1, 1, "cpu")["test"][0]
    assert x.min() == 0 and x.max() == 1
    z = cls(cls.Config(source="mnist-5k", scale="standard")).splits(1, 1, "cpu")["test"][0]
    assert torch.allclose(z, (x - 0.1307) / 0.3081, atol=1e-5)


@pytest.mark.parametrize("name", [n for n, t in TASKS.items() if issubclass(t, SyntheticTask)])
def test_evaluation_sets_do_not_depend_on_the_device(name, monkeypatch):
    """They are drawn on the CPU whatever device is asked for, then moved: the same numbers everywhere."""
    from tasks.base import checksum

    task, seen = small(name), []
    real = task.make_batch

    def spy(n, generator, device):
        seen.append((generator.device.type, str(device)))
        return real(n, generator, device)

    monkeypatch.setattr(task, "make_batch", spy)
    on_cpu = task.splits(16, 24, "cpu")
    on_meta = task.splits(16, 24, "meta")  # a device that holds no numbers: drawing there could not be checked
    assert set(seen) == {("cpu", "cpu")}
    assert all(x.device.type == "meta" for pair in on_meta.values() for x in pair)
    again = small(name).splits(16, 24, torch.device("cpu"))
    assert checksum(*on_cpu["test"]) == checksum(*again["test"]) and checksum(*on_cpu["val"]) != checksum(*on_cpu["test"])


@pytest.mark.parametrize("seed,which", [(1_000_003, "validation"), (2_000_003, "test")])
def test_a_run_seed_that_draws_an_evaluation_set_is_refused(tmp_path, monkeypatch, capsys, seed, which):
    from suite.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["run", "--profile", "smoke", "--model", "lstm", "--task", "adding", "--seed", str(seed)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"seeds: {seed} draws the {which} sets" in err
    assert not (tmp_path / "mlflow.db").exists()
