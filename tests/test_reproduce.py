"""Reproductions: Keras' own run of the tutorial model beside ours, and the comparison rule."""
import importlib.util
import os

import pytest
from mlflow import MlflowClient

from suite.cli import main
from suite.studies.reproduce import REPRODUCTIONS, Reproduction, compare


def test_the_comparison_is_of_means_within_the_tolerance():
    entry = Reproduction("x", "keras_seed.yaml", "test_acc", 0.02, "a table", published=0.90)
    close = compare({0: 0.89, 1: 0.91, 2: 0.90}, {0: 0.90, 1: 0.90, 2: 0.90}, entry)
    assert close["reproduced"] == 1.0 and close["difference"] == pytest.approx(0.0)
    far = compare({0: 0.70, 1: 0.72}, {0: 0.90}, entry)
    assert far["reproduced"] == 0.0 and far["difference"] == pytest.approx(-0.19) and far["reference_std"] == 0.0
    assert REPRODUCTIONS["keras-seed"].tolerance == 0.02 and REPRODUCTIONS["keras-seed"].config == "keras_seed.yaml"


def test_keras_seed_runs_both_sides_and_records_them(in_store, capsys):
    if importlib.util.find_spec("keras") is None:
        if os.environ.get("CI"):
            pytest.fail("keras is missing in CI (.ci/run installs the repro extra)")
        pytest.skip("Keras 3 not installed (`.venv/bin/pip install -e '.[repro]'`); CI runs this test")
    code = main(["reproduce", "keras-seed", "--seeds", "1", "--epochs", "1", "--tracking-uri", in_store,
                 "--experiment", "t-repro"])
    assert code in (0, 1)  # one epoch need not agree; the full command (3 seeds, 10 epochs) must
    out = capsys.readouterr().out
    assert "reference test_acc" in out and "ours test_acc" in out and "tolerance ±0.02" in out
    client = MlflowClient(in_store)
    runs = client.search_runs([client.get_experiment_by_name("t-repro").experiment_id])
    roles = sorted(r.data.tags["rnnbench_role"] for r in runs)
    assert roles == ["reference_run", "repro_cell", "reproduction"]
    parent = next(r for r in runs if r.data.tags["rnnbench_role"] == "reproduction")
    assert {"ours_mean", "reference_mean", "difference", "reproduced"} <= set(parent.data.metrics)
    assert all(r.data.tags.get("mlflow.parentRunId") == parent.info.run_id for r in runs if r is not parent)
    ours = next(r for r in runs if r.data.tags["rnnbench_role"] == "repro_cell")
    assert ours.data.tags["init"] == "keras" and ours.data.params["train.epochs"] == "1"


def test_an_unknown_reproduction_is_one_line(capsys):
    assert main(["reproduce", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown reproduction 'nope'; known: keras-seed" in err
