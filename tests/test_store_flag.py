"""Every command that reads a trained network back reads it from the store --tracking-uri names, run from a folder
that holds no store: MLflow resolves a run's logged model through its global tracking URI, which rnnbench never
sets, so a lookup that went through it would find another store's (./mlflow.db) or none."""
from mlflow import MlflowClient

from suite.cli import main


def test_gradflow_checkpoint_and_register_read_the_store_they_are_given(tmp_path, monkeypatch, capsys):
    store, work = tmp_path / "store", tmp_path / "work"
    store.mkdir()
    work.mkdir()
    uri = f"sqlite:///{store}/mlflow.db"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(store)
    assert main(["benchmark", "--profile", "smoke", "--tasks", "adding", "--models", "lstm", "--tracking-uri", uri]) == 0
    client = MlflowClient(uri)
    (cell,) = client.search_runs([client.get_experiment_by_name("rnnbench-smoke").experiment_id])

    monkeypatch.chdir(work)
    assert main(["--tracking-uri", uri, "gradflow", "--profile", "smoke", "--task", "adding", "--models", "lstm"]) == 0
    assert main(["gradflow", "--profile", "smoke", "--task", "adding", "--models", "lstm", "--checkpoint",
                 cell.info.run_id, "--tracking-uri", uri, "--experiment", "t-flag-checkpoint"]) == 0
    assert main(["--tracking-uri", uri, "register", "--profile", "smoke"]) == 0
    runs = client.search_runs([client.get_experiment_by_name("rnnbench-gradflow-smoke").experiment_id,
                               client.get_experiment_by_name("t-flag-checkpoint").experiment_id])
    assert sorted(r.data.tags["trained_runs"] for r in runs) == [cell.info.run_id] * 2  # the benchmark's network
    assert [v.run_id for v in client.search_model_versions()] == [cell.info.run_id]
    assert not (work / "mlflow.db").exists() and not (work / "mlruns").exists()  # no global store was made here
    assert "Traceback" not in capsys.readouterr().err
