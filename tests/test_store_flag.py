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


def test_a_network_whose_files_were_deleted_is_one_line(in_store, tmp_path, capsys):
    import shutil
    from urllib.parse import unquote, urlsplit

    assert main(["run", "--profile", "smoke", "--model", "lstm", "--task", "adding", "--tracking-uri", in_store,
                 "--experiment", "t-flag-deleted"]) == 0
    client = MlflowClient(in_store)
    (run,) = client.search_runs([client.get_experiment_by_name("t-flag-deleted").experiment_id])
    model = client.get_logged_model(run.outputs.model_outputs[-1].model_id)
    shutil.rmtree(unquote(urlsplit(model.artifact_location).path))  # a user cleaning up mlartifacts/
    capsys.readouterr()
    assert main(["gradflow", "--profile", "smoke", "--task", "adding", "--models", "lstm", "--checkpoint",
                 run.info.run_id, "--tracking-uri", in_store, "--experiment", "t-flag-deleted-gf"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"run {run.info.run_id}: its trained network is not at" in err, err
