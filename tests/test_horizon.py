"""The horizon rule on fabricated per-run records, and testing a model at another length."""
import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from suite.cli import main
from suite.studies.horizon import horizon

Y, N = True, False


@pytest.mark.parametrize("solved,expected", [
    ({50: [Y, Y, Y], 100: [Y, Y, N], 200: [N, N, Y], 500: [N, N, N]}, 100),  # majority at 100, not at 200
    ({50: [Y, Y, Y], 100: [N, N, N], 200: [Y, Y, Y]}, 50),  # non-monotone: 200 does not count after 100 failed
    ({50: [N, N, N], 100: [N, N, N]}, None),  # all unsolved
    ({50: [Y], 100: [Y], 1000: [Y]}, 1000),  # all solved
    ({100: [Y, N], 50: [Y, Y]}, 50),  # 1 of 2 is no majority; order of the ladder does not matter
])
def test_horizon_rule(solved, expected):
    assert horizon(solved) == expected


def test_horizon_with_a_lower_share():
    assert horizon({50: [Y, N], 100: [Y, N, N]}, min_share=1 / 3) == 100


def test_a_run_is_also_tested_at_other_lengths(in_store):
    assert main(["run", "--profile", "smoke", "--model", "attn_rnn", "--task", "copy", "--set", "train.eval_seq_lens=[10, 40]",
                 "--tracking-uri", in_store, "--experiment", "t-len"]) == 0
    client = MlflowClient(in_store)
    (run,) = client.search_runs([client.get_experiment_by_name("t-len").experiment_id])
    for length in (10, 40):
        assert run.data.metrics[f"test_vs_chance_at_{length}"] > 0


def test_other_lengths_need_a_task_with_a_length(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--profile", "smoke", "--model", "lstm", "--task", "mnist_rows", "--set", "train.eval_seq_lens=[40]"]) == 2
    assert "train.eval_seq_lens: mnist_rows has a fixed length" in capsys.readouterr().err


def test_a_smoke_sweep_logs_the_horizon_table_and_plot(in_store, capsys, tmp_path):
    args = ["horizon", "--task", "adding", "--profile", "smoke", "--models", "lstm,rnn", "--set", "task.solved_mse=1.0",
            "--set", "train.epochs=1", "--tracking-uri", in_store, "--experiment", "t-horizon"]
    assert main(args) == 0
    client = MlflowClient(in_store)
    runs = client.search_runs([client.get_experiment_by_name("t-horizon").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("rnnbench_role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 4 and {r.data.tags["seq_len"] for r in children} == {"5", "10"}
    assert parent.data.metrics["horizon_lstm"] == 10 and parent.data.metrics["horizon_rnn"] == 10  # MSE < 1 is easy
    assert {"horizon.json", "test_vs_chance.png"} <= {f.path for f in client.list_artifacts(parent.info.run_id)}
    out = capsys.readouterr().out
    assert "T=5" in out and "T=10" in out and "horizon" in out and "5->10" in out
    assert all(f"test_vs_chance_at_{2 * int(r.data.tags['seq_len'])}" in r.data.metrics for r in children)
    assert main(args) == 0  # again: every run is already finished, and the new sweep counts (and names) them
    (again,) = [r for r in client.search_runs([parent.info.experiment_id], "tags.rnnbench_role = 'sweep'")
                if r.info.run_id != parent.info.run_id]
    shares = json.loads(Path(client.download_artifacts(again.info.run_id, "horizon.json", str(tmp_path))).read_text())
    assert sorted(i for row in shares["solved_share"] for i in row["runs"]) == sorted(r.info.run_id for r in children)


def test_without_a_task_every_ladder_of_the_profile_is_swept(in_store):
    assert main(["horizon", "--profile", "smoke", "--models", "rnn", "--set", "train.epochs=1",
                 "--tracking-uri", in_store, "--experiment", "t-every"]) == 0
    client = MlflowClient(in_store)
    runs = client.search_runs([client.get_experiment_by_name("t-every").experiment_id], "tags.rnnbench_role = 'sweep'")
    assert sorted(r.data.tags["task"] for r in runs) == ["adding", "copy"]  # smoke.yaml's horizon: ladders


def test_a_task_whose_inputs_grow_with_length_is_not_tested_at_other_lengths(in_store):
    """assoc_recall has one key symbol a pair: a model trained at one length cannot read another; the horizon
    sweep asks for 2x anyway, and the run must finish without that figure rather than fail."""
    assert main(["run", "--profile", "smoke", "--model", "gru", "--task", "assoc_recall", "--set", "task.seq_len=8",
                 "--set", "train.eval_seq_lens=[16]", "--tracking-uri", in_store, "--experiment", "t-grow"]) == 0
    client = MlflowClient(in_store)
    (run,) = client.search_runs([client.get_experiment_by_name("t-grow").experiment_id])
    assert run.info.status == "FINISHED" and "test_vs_chance_at_16" not in run.data.metrics
