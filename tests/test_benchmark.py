"""Runs land in MLflow with the promised tags and metrics; finished cells are skipped; failures are recorded."""
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from suite.cli import main

ROOT = Path(__file__).resolve().parent.parent
TAGS = {"model", "task", "seq_len", "seed", "profile", "data_source", "config_hash", "git_sha", "device", "torch_version"}
FINAL = {"test_loss", "train_samples_per_s", "epoch_time_s", "n_params", "peak_mem_mb"}


def runs(uri, experiment):
    exp = MlflowClient(uri).get_experiment_by_name(experiment)
    return MlflowClient(uri).search_runs([exp.experiment_id], max_results=1000) if exp else []


def test_smoke_matrix_records_every_cell_then_skips_them(in_store, capsys):
    args = ["benchmark", "--profile", "smoke", "--tracking-uri", in_store, "--experiment", "t-matrix"]
    assert main(args) == 0
    out = capsys.readouterr().out
    found = runs(in_store, "t-matrix")
    assert len(found) == 16 and all(r.info.status == "FINISHED" for r in found)
    client = MlflowClient(in_store)
    for r in found:
        tags, metrics = r.data.tags, r.data.metrics
        assert TAGS <= set(tags), TAGS - set(tags)
        assert FINAL <= set(metrics) and all(math.isfinite(metrics[k]) and metrics[k] > 0 for k in FINAL)
        assert ("test_mse" if tags["task"] == "adding" else "test_acc") in metrics
        assert {"train_loss", "val_loss"} <= set(metrics)
        assert len(client.get_metric_history(r.info.run_id, "val_loss")) == 2  # one value an epoch
        assert r.data.params["model.name"] == tags["model"] and r.data.params["train.epochs"] == "2"
        expected_source = "mnist-5k" if tags["task"].startswith("mnist") else "synthetic"
        assert tags["data_source"] == expected_source and tags["profile"] == "smoke"
        kernel = {"rnn": "RNN_TANH", "lstm": "LSTM", "gru": "GRU", "attn_rnn": "GRU"}[tags["model"]]
        assert tags["precision"] == "32-true" and tags["compute_dtypes"] == f"{kernel} float32 · Linear float32"
        inputs = {(d.dataset.name, d.tags[0].value) for d in r.inputs.dataset_inputs}  # MLflow's Dataset column
        name = "mnist-5k" if tags["task"].startswith("mnist") else f"{tags['task']} T={tags['seq_len']} (generated)"
        assert inputs == {(name, "training"), (name, "test")}
        artifacts = {f.path for f in client.list_artifacts(r.info.run_id)}
        assert "config.yaml" in artifacts and len(r.outputs.model_outputs) == 1  # the network: a logged model
        assert ({"attention.png", "attention.npy"} <= artifacts) == (tags["model"] == "attn_rnn")
    assert {(r.data.tags["model"], r.data.tags["task"]) for r in found} == {
        (m, t) for m in ("rnn", "lstm", "gru", "attn_rnn") for t in ("mnist_rows", "mnist_pixels", "copy", "adding")}
    assert "loss/chance" in out and "make ui" in out

    assert main(args) == 0  # again: nothing is retrained
    out = capsys.readouterr().out
    assert "16 skipped" in out and len(runs(in_store, "t-matrix")) == 16
    assert "already finished, skipped" in out and "acc " in out  # the table still shows their results

    assert main([*args, "--models", "lstm", "--tasks", "adding", "--force"]) == 0
    assert len(runs(in_store, "t-matrix")) == 17


def test_a_crashing_cell_is_failed_with_its_error_and_the_rest_run(in_store, monkeypatch, capsys):
    import suite.train

    real = suite.train.assemble

    def build(cell, device):
        if cell.model == "gru":
            raise RuntimeError("boom in gru")
        return real(cell, device)

    monkeypatch.setattr(suite.train, "assemble", build)
    code = main(["benchmark", "--profile", "smoke", "--tasks", "adding", "--tracking-uri", in_store, "--experiment", "t-fail"])
    out = capsys.readouterr().out
    assert code == 1
    by_model = {r.data.tags["model"]: r for r in runs(in_store, "t-fail")}
    assert by_model["gru"].info.status == "FAILED" and by_model["gru"].data.tags["error"] == "RuntimeError: boom in gru"
    assert all(by_model[m].info.status == "FINISHED" for m in ("rnn", "lstm", "attn_rnn"))
    assert "1 failed" in out and "FAILED gru · adding" in out


def test_runs_are_reproducible_on_cpu(in_store):
    for experiment in ("t-repro-a", "t-repro-b"):
        assert main(["run", "--profile", "smoke", "--model", "lstm", "--task", "copy",
                     "--tracking-uri", in_store, "--experiment", experiment]) == 0
    (a,), (b,) = runs(in_store, "t-repro-a"), runs(in_store, "t-repro-b")
    assert a.data.metrics["test_loss"] == b.data.metrics["test_loss"]
    assert a.data.tags["config_hash"] == b.data.tags["config_hash"]


def test_run_with_overrides_and_param_budget(in_store):
    assert main(["run", "--profile", "smoke", "--model", "attn_rnn", "--task", "adding", "--set", "model.param_budget=6000",
                 "--set", "task.seq_len=12", "--tracking-uri", in_store, "--experiment", "t-set"]) == 0
    (r,) = runs(in_store, "t-set")
    assert r.data.tags["seq_len"] == "12" and abs(r.data.metrics["n_params"] - 6000) <= 300
    artifacts = {f.path for f in MlflowClient(in_store).list_artifacts(r.info.run_id)}
    assert "config.yaml" in artifacts


@pytest.mark.parametrize("argv,code", [(["benchmark", "--profile", "smoke", "--models", "lstm", "--tasks", "adding,copy"], 0),
                                       (["run", "--model", "lstm", "--task", "adding", "--set", "task.seq_len=0"], 2)])
def test_end_to_end_in_a_fresh_process(tmp_path, argv, code):
    """The installed console script, as a user runs it (default store in the working folder)."""
    exe = Path(sys.executable).parent / "rnnbench"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    out = subprocess.run([str(exe), *argv], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == code, out.stderr[-2000:]
    if code == 0:
        assert (tmp_path / "mlflow.db").exists() and (tmp_path / "mlartifacts").is_dir()
        assert "2 trained, 0 skipped" in out.stdout
        assert "GPU available" not in out.stdout + out.stderr  # quiet: no Lightning banners
    else:
        assert out.stderr.strip().count("\n") == 0 and "seq_len" in out.stderr and "Traceback" not in out.stderr


def test_sigterm_marks_the_current_run_killed_and_keeps_finished_ones(tmp_path):
    """A scheduler's preemption (SIGTERM), even of a background launch that ignores SIGINT."""
    import signal

    exe = Path(sys.executable).parent / "rnnbench"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.Popen([str(exe), "benchmark", "--profile", "smoke", "--tasks", "mnist_pixels"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    for line in proc.stdout:  # wait for the first finished cell, then stop the second one mid-run
        if line.startswith("[1/4]"):
            break
    client, deadline = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db"), time.monotonic() + 120
    experiment = client.get_experiment_by_name("rnnbench-smoke").experiment_id
    while not client.search_runs([experiment], "attributes.status = 'RUNNING'"):  # the second cell is training
        assert time.monotonic() < deadline and proc.poll() is None, "the second cell never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    statuses = sorted(r.info.status for r in MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").search_runs(
        [mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_experiment_by_name("rnnbench-smoke").experiment_id]))
    assert statuses[0] == "FINISHED" and "RUNNING" not in statuses and set(statuses) <= {"FINISHED", "KILLED"}
    assert len(statuses) < 4  # it stopped: the rest of the matrix was not run
