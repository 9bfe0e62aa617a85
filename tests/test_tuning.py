"""Tuning: studies resume and top up, prune, run in parallel, survive a diverging trial, feed --tuned."""
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from suite.cli import main
from suite.experiment import load_raw, plan
from suite.models import MODELS
from suite.tuning.space import load_space

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ["--profile", "smoke", "--model", "lstm", "--task", "adding"]


def child_runs(uri, experiment, parent_tag="study"):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("rnnbench_role") == "study"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def study(path, name="smoke-lstm-adding-T20"):
    from optuna.storages.journal import JournalFileBackend

    return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(JournalFileBackend(str(path))))


def test_a_study_records_parent_and_trials_then_tops_up_and_feeds_tuned(in_store, tmp_path, capsys):
    storage = str(tmp_path / "journal.log")
    args = ["tune", *SMOKE, "--tracking-uri", in_store, "--experiment", "t-tune", "--storage", storage]
    assert main(args) == 0
    parents, children = child_runs(in_store, "t-tune")
    assert len(parents) == 1 and len(children) == 4
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert all(c.data.tags["optuna_state"] in ("COMPLETE", "PRUNED") for c in children)
    parent = parents[0]
    assert parent.data.tags["model"] == "lstm" and parent.data.tags["storage"] == storage
    assert parent.data.params["budget.trials"] == "4" and parent.data.params["budget.pruner"] == "median"

    assert main([*args, "--trials", "6"]) == 0  # resumes: exactly 2 more
    parents, children = child_runs(in_store, "t-tune")
    s = study(storage)
    assert len(parents) == 1 and len(children) == 6 and len(s.trials) == 6
    assert distinct(s) == 6  # a top-up draws new parameters, never trial 0's again
    assert len({t.user_attrs["sampler_seed"] for t in s.trials}) == 6
    assert sorted(int(c.data.tags["optuna_trial"]) for c in children) == list(range(6))
    assert s.user_attrs["budget.trials"] == 6 and s.metric_names == ["val_loss"]  # not "Objective 0"
    assert all(t.user_attrs["mlflow_run"].endswith(f"/runs/{t.user_attrs['mlflow_run_id']}?workflowType=machine_learning")
               for t in s.trials)
    pruned = [t for t in s.trials if t.state.name == "PRUNED"]
    assert pruned, "the smoke profile's aggressive median pruner prunes the weaker trials"
    pruned_run = next(c for c in children if c.data.tags["optuna_state"] == "PRUNED")
    assert pruned_run.data.tags["pruned_at_epoch"] == "1" and pruned_run.data.metrics["epochs_trained"] == 1
    parent = MlflowClient(in_store).get_run(parents[0].info.run_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics["best_val_loss"] == pytest.approx(s.best_value)
    assert parent.data.tags["best.train.lr"] == str(s.best_params["train.lr"])
    out = capsys.readouterr().out
    assert "6/6 done" in out and "best val_loss" in out

    bench = ["benchmark", "--profile", "smoke", "--models", "lstm", "--tasks", "adding", "--tuned", "--storage", storage,
             "--tracking-uri", in_store, "--experiment", "t-tuned"]
    assert main(bench) == 0
    exp = MlflowClient(in_store).get_experiment_by_name("t-tuned")
    (run,) = MlflowClient(in_store).search_runs([exp.experiment_id])
    assert run.data.tags["tuned"] == "true" and run.data.tags["study"] == "smoke-lstm-adding-T20"
    for key, value in s.best_params.items():
        assert run.data.params[key] == str(value)


def distinct(s) -> int:
    """The distinct parameter sets a study's trials ran."""
    return len({tuple(sorted(t.params.items())) for t in s.trials})


def test_a_top_up_from_one_trial_to_two_runs_two_parameter_sets_and_a_pinned_tuned_key_is_refused(tmp_path, capsys):
    storage, uri = str(tmp_path / "journal.log"), f"sqlite:///{tmp_path}/mlflow.db"
    args = ["tune", *SMOKE, "--set", "task.seq_len=5", "--set", "train.epochs=1", "--set", "train.steps_per_epoch=2",
            "--tracking-uri", uri, "--storage", storage]
    assert main([*args, "--set", "train.lr=1000000.0"]) == 2  # the study would replace it: one line, nothing written
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--set train.lr: the study searches train.lr" in err, err
    assert list(tmp_path.iterdir()) == []
    assert main([*args, "--trials", "1"]) == 0 and main([*args, "--trials", "2"]) == 0
    s = study(storage, "smoke-lstm-adding-T5")
    assert len(s.trials) == 2 and distinct(s) == 2


def test_a_diverging_trial_fails_with_its_reason_and_the_study_goes_on(in_store, tmp_path, monkeypatch):
    import torch

    import suite.train

    real, calls = suite.train.assemble, []

    def build(cell, device):  # the second trial's loss turns NaN
        parts = real(cell, device)
        calls.append(cell)
        if len(calls) == 2:
            step = parts[-1].model_step
            parts[-1].model_step = lambda batch, metric=True: (step(batch, metric)[0] * torch.tensor(float("nan")), None)
        return parts

    monkeypatch.setattr(suite.train, "assemble", build)
    storage = str(tmp_path / "journal.log")
    assert main(["tune", *SMOKE, "--trials", "3", "--tracking-uri", in_store, "--experiment", "t-nan", "--storage", storage]) == 1  # a trial failed
    s = study(storage)
    states = [t.state.name for t in s.trials]
    assert states.count("FAIL") == 1 and len(states) == 4  # 3 counted trials plus the failed one
    failed = next(t for t in s.trials if t.state.name == "FAIL")
    assert "train_loss became nan" in failed.user_attrs["fail_reason"]
    _, children = child_runs(in_store, "t-nan")
    bad = next(c for c in children if c.data.tags["optuna_state"] == "FAIL")
    assert bad.info.status == "FAILED" and "FloatingPointError" in bad.data.tags["error"]


@pytest.mark.slow
def test_two_worker_processes_fill_the_study_exactly(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    out = subprocess.run([sys.executable, "-m", "suite", "tune", *SMOKE, "--trials", "5", "--workers", "2",
                          "--pruner", "none", "--tracking-uri", uri], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    s = study(tmp_path / "optuna-journal.log")
    assert [t.state.name for t in s.trials] == ["COMPLETE"] * 5 and distinct(s) == 5
    assert "[worker 0]" in out.stdout and "[worker 1]" in out.stdout
    parents, children = child_runs(uri, "rnnbench-tune-smoke")
    assert len(parents) == 1 and len(children) == 5


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_two_tune_processes_on_one_study_fill_it_exactly_with_distinct_trials(tmp_path, kind):
    """Two `rnnbench tune` commands started on one study (SQLite, the storage most Optuna users reach for first, and
    the journal file): no deadlock on its locks, exactly N trials, each with parameters of its own (both processes
    seeded alike once drew trial 0's parameters twice)."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    storage = f"sqlite:///{tmp_path}/study.db" if kind == "sqlite" else str(tmp_path / "journal.log")
    command = [sys.executable, "-m", "suite", "tune", *SMOKE, "--trials", "4", "--pruner", "none", "--set",
               "task.seq_len=10", "--tracking-uri", uri, "--storage", storage]
    procs = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    s = optuna.load_study(study_name="smoke-lstm-adding-T10", storage=storage) if kind == "sqlite" else \
        study(storage, "smoke-lstm-adding-T10")
    assert [t.state.name for t in s.trials] == ["COMPLETE"] * 4 and distinct(s) == 4
    _, children = child_runs(uri, "rnnbench-tune-smoke")
    assert len(children) == 4 and len({c.data.tags["sampler_seed"] for c in children}) == 4


@pytest.mark.parametrize("text,expected", [
    ("train.lr: {low: 0.1, high: 0.01}\n", "low (0.1) must be below high (0.01)"),
    ("train.lrr: {low: 0.001, high: 0.01}\n", "train.lrr: unknown key"),
    ("model.dropout: {low: 0.0, high: 1.5}\n", "model.dropout: Input should be less than 1"),
    ("train.lr: {low: 0, high: 0.01, log: true}\n", "a log range needs low > 0"),
    ("train.lr: {min: 0.001}\n", "unknown key min"),
    ("train.batch_size: {choices: []}\n", "expected a non-empty list"),
])
def test_a_bad_search_space_stops_before_anything_runs(tmp_path, monkeypatch, capsys, text, expected):
    monkeypatch.chdir(tmp_path)
    space = tmp_path / "space.yaml"
    space.write_text(text)
    assert main(["tune", *SMOKE, "--space", str(space), "--tracking-uri", f"sqlite:///{tmp_path}/m.db"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "m.db").exists() and not (tmp_path / "optuna-journal.log").exists()


def test_every_model_has_a_valid_search_space():
    raw, _, _ = load_raw("cpu")
    for model in MODELS:
        cells = plan({**raw, "models": [model]})
        assert len(load_space(model, [c for c in cells if c.seed == cells[0].seed])) >= 5


def test_a_trial_that_reached_its_last_epoch_completes_and_is_never_pruned():
    """optuna-dashboard once showed "pruned after epoch 2 of 2": a fully trained trial thrown away."""
    from types import SimpleNamespace

    from suite.tuning.objective import pruning_callback

    class AlwaysPrune:
        reported = []

        def report(self, value, step):
            self.reported.append((step, value))

        def should_prune(self):
            return True

    trial = AlwaysPrune()
    callback = pruning_callback(trial)
    callback.is_ddp_backend = False
    import torch

    trainer = SimpleNamespace(sanity_checking=False, max_epochs=2, callback_metrics={"val_loss": torch.tensor(0.5)})
    with pytest.raises(optuna.TrialPruned):  # before the last epoch the pruner decides
        callback.on_validation_end(trainer, SimpleNamespace(current_epoch=0))
    callback.on_validation_end(trainer, SimpleNamespace(current_epoch=1))  # the last: reported, not pruned
    assert trial.reported == [(0, 0.5), (1, 0.5)]


def test_ctrl_c_mid_trial_fails_the_trial_kills_its_run_and_exits_130(tmp_path):
    """Interrupted mid-trial: the trial ends FAIL ("interrupted", so a top-up runs it again), its MLflow run and
    the study's end KILLED, nothing is left RUNNING, and the user sees one line."""
    import signal

    from tests.test_cluster import finish, rnnbench, wait_for

    uri, storage = f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "journal.log")
    proc = rnnbench("tune", *SMOKE, "--trials", "3", "--pruner", "none", "--set", "train.epochs=300",
                    "--set", "train.steps_per_epoch=4", "--set", "task.seq_len=10", "--set", "train.stop_when_solved=0",
                    "--tracking-uri", uri, "--experiment", "t-sigint", "--storage", storage, cwd=tmp_path,
                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    client = MlflowClient(uri)

    def training():
        children = child_runs(uri, "t-sigint")[1] if client.get_experiment_by_name("t-sigint") else []
        return any(client.get_metric_history(c.info.run_id, "val_loss") for c in children)

    wait_for(training, proc)
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc, 120)
    assert code == 130 and "interrupted" in err and "Traceback" not in err, err[-3000:]
    parents, children = child_runs(uri, "t-sigint")
    assert [p.info.status for p in parents] == ["KILLED"]
    assert [c.info.status for c in children] == ["KILLED"]
    trials = study(storage, "smoke-lstm-adding-T10").trials
    assert [t.state.name for t in trials] == ["FAIL"] and trials[0].user_attrs["fail_reason"] == "interrupted"
