"""Trained models as MLflow users expect: loadable without rnnbench, registered with an honest champion, and the
machine's load (system metrics) beside each run."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from mlflow import MlflowClient

from suite.cli import main

REPO = str(Path(__file__).resolve().parent.parent) + "/"

LOAD = """
import sys, json, numpy as np, torch, mlflow.pytorch
model = mlflow.pytorch.load_model(sys.argv[1])
x, y = torch.from_numpy(np.load(sys.argv[2])), torch.from_numpy(np.load(sys.argv[3]))
with torch.no_grad():
    mse = float(((model(x) - y) ** 2).mean())
repo = sys.argv[4]
print(json.dumps({"mse": f"{mse:.4f}", "ours": sorted(m for m, mod in list(sys.modules.items())
                                                   if (getattr(mod, "__file__", None) or "").startswith(repo)
                                                   and not mod.__file__.startswith(sys.prefix))}))
"""


def only_run(uri, experiment):
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return client, run


def test_a_runs_model_loads_without_rnnbench_and_reproduces_its_test_metric(in_store, tmp_path):
    from suite.experiment import load_experiment

    assert main(["run", "--profile", "smoke", "--model", "lstm", "--task", "adding", "--tracking-uri", in_store,
                 "--experiment", "t-model"]) == 0
    client, run = only_run(in_store, "t-model")
    model = client.download_artifacts(run.info.run_id, "model", str(tmp_path))
    size = sum(p.stat().st_size for p in (tmp_path / "model").rglob("*") if p.is_file())
    assert size < 500_000, size  # the network alone: no optimizer state, no checkpoint
    cell = load_experiment("smoke", models=["lstm"], tasks=["adding"], announce=None).cells[0]
    x, y = cell.make_task().splits(cell.train.n_val, cell.train.n_test, "cpu")["test"]
    np.save(tmp_path / "x.npy", x.numpy())
    np.save(tmp_path / "y.npy", y.numpy())
    done = subprocess.run([sys.executable, "-c", LOAD, model, str(tmp_path / "x.npy"), str(tmp_path / "y.npy"),
                           str(REPO)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["ours"] == []  # nothing of this checkout was imported: the model's own bundled code was
    assert found["mse"] == f"{run.data.metrics['test_mse']:.4f}"
    assert run.data.tags["model_format"] == "pickle" and (tmp_path / "model" / "code" / "suite" / "models").is_dir()


def test_a_run_is_an_mlflow_logged_model_with_its_test_metrics_params_and_registry_versions(in_store, monkeypatch):
    import mlflow.pytorch
    from mlflow.entities import LoggedModelStatus

    assert main(["run", "--profile", "smoke", "--model", "lstm", "--task", "copy", "--tracking-uri", in_store,
                 "--experiment", "t-logged"]) == 0
    client, run = only_run(in_store, "t-logged")
    run_id = run.info.run_id
    (model,) = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    assert (model.name, model.source_run_id, model.status) == ("model", run_id, LoggedModelStatus.READY)
    assert [o.model_id for o in run.outputs.model_outputs] == [model.model_id]  # the runs table's Models column
    tested = {k: v for k, v in run.data.metrics.items() if k.startswith("test_")}
    assert "test_loss" in tested and {m.key: m.value for m in model.metrics if m.key in tested} == tested
    assert all(m.run_id == run_id for m in model.metrics)
    assert model.params == run.data.params and "model.hidden_size" in model.params
    monkeypatch.setenv("MLFLOW_TRACKING_URI", in_store)  # how a user loads it, by the run's URI
    assert type(mlflow.pytorch.load_model(f"runs:/{run_id}/model")).__name__ == "Network"

    assert main(["register", "--tracking-uri", in_store, "--experiment", "t-logged"]) == 0
    (version,) = client.search_model_versions(f"run_id = '{run_id}'")
    assert version.source == model.artifact_location
    assert json.loads(client.get_logged_model(model.model_id).tags["mlflow.modelVersions"]) == [
        {"name": version.name, "version": version.version}]  # the model's page lists its version
    assert type(mlflow.pytorch.load_model(f"models:/{version.name}/{version.version}")).__name__ == "Network"


def test_system_metrics_are_logged_with_a_run_shorter_than_their_interval(in_store, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "3600")  # any run is shorter (runs: every 10 s)
    assert main(["run", "--profile", "smoke", "--model", "gru", "--task", "copy", "--tracking-uri", in_store,
                 "--experiment", "t-system"]) == 0
    client, run = only_run(in_store, "t-system")
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(run.data.metrics)
    (final,) = client.get_metric_history(run.info.run_id, "system/system_memory_usage_megabytes")  # its one sample
    assert final.value > 0


def fake_round(client, experiment_id, values, model="lstm"):
    """Three finished cells of one model on adding T=20 with these test MSEs (one a seed)."""
    for seed, value in enumerate(values):
        run = client.create_run(experiment_id, tags={"rnnbench_role": "cell", "model": model, "task": "adding",
                                                     "seq_len": "20", "seed": str(seed), "profile": "smoke",
                                                     "data_source": "synthetic", "init": "torch"})
        for key, v in (("test_mse", value), ("test_loss", value), ("test_vs_chance", value * 6), ("n_params", 5e3)):
            client.log_metric(run.info.run_id, key, v)
        client.set_terminated(run.info.run_id, "FINISHED")


def test_register_names_a_champion_and_moves_it_only_for_a_better_result(in_store, capsys):
    client = MlflowClient(in_store)
    experiment = client.create_experiment("t-register")
    args = ["register", "--tracking-uri", in_store, "--experiment", "t-register"]
    fake_round(client, experiment, [0.050, 0.052, 0.051])
    fake_round(client, experiment, [0.20, 0.21, 0.19], model="gru")
    assert main(args) == 0
    names = {m.name: m.aliases for m in client.search_registered_models("name LIKE 'rnnbench-%adding-T20'")}
    assert names == {"rnnbench-lstm-adding-T20": {"champion": 1}, "rnnbench-gru-adding-T20": {"champion": 1}}
    version = client.get_model_version("rnnbench-lstm-adding-T20", 1)
    assert version.tags["test_metric"] == "0.05" and version.tags["data_source"] == "synthetic"
    assert {"code_fingerprint", "protocol", "seed_values"} <= set(version.tags)
    assert main(args) == 0  # the same runs again: no new version
    assert len(client.search_model_versions("name = 'rnnbench-lstm-adding-T20'")) == 1

    fake_round(client, experiment, [0.0501, 0.0522, 0.0509])  # a new round within the seed noise
    assert main(args) == 0
    assert client.get_registered_model("rnnbench-lstm-adding-T20").aliases == {"champion": 1}
    assert "kept version 1 as champion" in capsys.readouterr().out

    fake_round(client, experiment, [0.010, 0.011, 0.012])  # clearly better over three seeds
    assert main(args) == 0
    assert client.get_registered_model("rnnbench-lstm-adding-T20").aliases == {"champion": 3}
