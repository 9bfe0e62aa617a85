"""Cluster scale against real PostgreSQL and MLflow server processes on 127.0.0.1.

Many tuning workers on one PostgreSQL study, a worker killed -9 mid-trial, overlapping benchmark
shards, a benchmark killed -9 mid-cell and resumed from its checkpoint, Ctrl-C, the server lost
mid-run, and a password in the URLs that must never be written anywhere.
"""
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import optuna
import pytest
from mlflow import MlflowClient

from suite.pgtemp import PASSWORD
from suite.tracking import plan_blocks
from tests.servers import MlflowServer

pytestmark = pytest.mark.slow  # real servers and fresh processes: `make test-all` runs these

TINY = ["--set", "train.epochs=2", "--set", "train.steps_per_epoch=4", "--set", "task.seq_len=10"]


def rnnbench(*argv, env=None, **kw):
    """The CLI in a fresh process (its own signal handling and stores), as a cluster job runs it."""
    return subprocess.Popen([sys.executable, "-m", "suite", *argv], env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def runs_of(uri, experiment):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id], max_results=5000)


def wait_for(condition, proc, timeout=240, every=0.5):
    """Poll `condition` while `proc` runs; its value once truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} first: {proc.stderr.read()[-2000:]}")
        time.sleep(every)
    raise AssertionError("timed out waiting")


def test_three_workers_on_one_postgres_study_reach_exactly_n(postgres, mlflow_server, tmp_path):
    storage = postgres.create("optuna_three")
    args = ["tune", "--profile", "smoke", "--model", "gru", "--task", "adding", "--trials", "7", *TINY,
            "--tracking-uri", mlflow_server.url, "--experiment", "c-three", "--storage", storage]
    procs = [rnnbench(*args, env={"RNNBENCH_THREADS": "1"}, cwd=tmp_path) for _ in range(3)]
    results = [finish(p) for p in procs]
    assert all(code == 0 for code, _, _ in results), "\n=====\n".join(err[-4000:] for _, _, err in results)
    study = optuna.load_study(study_name="smoke-gru-adding-T10", storage=storage)
    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name for t in trials)
    assert states["COMPLETE"] + states["PRUNED"] == 7 and states["RUNNING"] == states["WAITING"] == 0, states
    assert len({t.number for t in trials}) == len(trials)  # no duplicate trial numbers
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 7  # and no repeated parameters
    assert len({t.user_attrs["worker"] for t in trials}) >= 2  # the workers shared the work
    runs = runs_of(mlflow_server.url, "c-three")
    parents = [r for r in runs if r.data.tags.get("rnnbench_role") == "study"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 7
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert PASSWORD not in str([r.data.tags for r in runs] + [r.data.params for r in runs])
    assert parents[0].data.tags["storage"].count("***") == 1


PLANNER = """
import sys, time
from suite.experiment import load_experiment
from suite.tracking import connect, log_plan
model, start = sys.argv[1], float(sys.argv[2])
cells = load_experiment("smoke", models=[model], tasks=["adding"], announce=None).cells
time.sleep(max(0.0, start - time.time()))  # every job connects and plans at the same moment
log_plan(connect(sys.argv[3], "c-plans"), cells)
"""


def test_jobs_starting_together_on_a_server_all_connect_and_every_plan_is_kept(mlflow_server):
    """Six jobs create, describe and plan one new experiment at the same instant: none fails on the
    server refusing a second insert of the same tag, and no job's plan overwrites another's."""
    models, start = ["rnn", "lstm", "gru", "attn_rnn", "rnn", "lstm"], time.time() + 8
    procs = [subprocess.Popen([sys.executable, "-c", PLANNER, m, str(start), mlflow_server.url],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for m in models]
    results = [finish(p) for p in procs]
    assert all(code == 0 for code, _, _ in results), "\n=====\n".join(err[-3000:] for _, _, err in results)
    tags = MlflowClient(mlflow_server.url).get_experiment_by_name("c-plans").tags
    assert sorted(b["models"][0] for b in plan_blocks(tags)) == ["attn_rnn", "gru", "lstm", "rnn"]
    assert tags["mlflow.experimentKind"] == "custom_model_development"


def test_a_worker_killed_mid_trial_is_failed_and_its_trial_retried(postgres, mlflow_server, tmp_path):
    """kill -9 of a worker: its trial ends FAIL, is run again with the same parameters, the study completes.

    The heartbeat (1 s here, grace 3 s) is what catches a worker on another node: the test makes the
    dead trial look remote, so only the missing heartbeat can tell.
    """
    storage = postgres.create("optuna_kill")
    name, env = "smoke-lstm-adding-T10", {"RNNBENCH_HEARTBEAT_S": "1", "RNNBENCH_THREADS": "1"}
    args = ["tune", "--profile", "smoke", "--model", "lstm", "--task", "adding", "--trials", "3", *TINY,
            "--pruner", "none", "--tracking-uri", mlflow_server.url, "--experiment", "c-kill", "--storage", storage]
    victim = rnnbench(*args, "--set", "train.epochs=40", env=env, cwd=tmp_path)
    running = wait_for(lambda: [t for t in _trials(storage, name) if t.state.name == "RUNNING" and t.number == 0
                                and _has_epochs(mlflow_server.url, "c-kill")], victim)
    victim.kill()  # SIGKILL: no handler runs, nothing is cleaned up
    victim.wait()
    optuna.load_study(study_name=name, storage=storage)._storage.set_trial_user_attr(
        running[0]._trial_id, "worker", "another-node:1:1")
    code, out, err = finish(rnnbench(*args, env=env, cwd=tmp_path))
    assert code == 0, err[-2000:]
    trials = _trials(storage, name)
    states = Counter(t.state.name for t in trials)
    assert states["COMPLETE"] == 3 and states["FAIL"] == 1 and states["RUNNING"] == 0, states
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retried) == 1 and retried[0].state.name == "COMPLETE" and retried[0].params == running[0].params
    runs = runs_of(mlflow_server.url, "c-kill")
    assert not [r for r in runs if r.info.status == "RUNNING"]
    killed = [r for r in runs if r.info.status == "KILLED"]
    assert len(killed) == 1 and "stale" in killed[0].data.tags  # the dead trial's run, marked on the next start


def _trials(storage, name):
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    except KeyError:
        return []


def _has_epochs(uri, experiment):
    return any("val_loss" in r.data.metrics for r in runs_of(uri, experiment))


def test_overlapping_shards_finish_every_cell_exactly_once(mlflow_server, tmp_path):
    """Shard 0/2 and 1/2 at once, plus the whole matrix (overlapping both), then a rerun."""
    args = ["benchmark", "--profile", "smoke", "--tasks", "adding,copy", *TINY, "--tracking-uri", mlflow_server.url,
            "--experiment", "c-shards"]
    procs = [rnnbench(*args, "--shard", "0/2", cwd=tmp_path), rnnbench(*args, "--shard", "1/2", cwd=tmp_path),
             rnnbench(*args, cwd=tmp_path, env={"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "1"})]
    results = [finish(p) for p in procs]
    assert all(code == 0 for code, _, _ in results), "\n=====\n".join(err[-4000:] for _, _, err in results)
    assert "shard 0/2: 4 of 8 cells" in results[0][1] and "shard 0/1: 8 of 8 cells" in results[2][1]
    code, out, err = finish(rnnbench(*args, cwd=tmp_path))
    assert code == 0 and "0 trained, 8 skipped" in out
    finished = Counter(r.data.tags["config_hash"] for r in runs_of(mlflow_server.url, "c-shards")
                       if r.info.status == "FINISHED")
    assert len(finished) == 8 and set(finished.values()) == {1}  # 8 cells, each exactly once FINISHED
    assert not [r for r in runs_of(mlflow_server.url, "c-shards") if r.info.status == "RUNNING"]

    # a password in the URL is refused, without echoing it; from the environment, no file holds it
    secret_url = mlflow_server.url.replace("http://", f"http://rnnbench:{PASSWORD}@")
    code, out, err = finish(rnnbench("report", "--tracking-uri", secret_url, "--experiment", "c-shards",
                                     "--out", str(tmp_path / "refused"), cwd=tmp_path))
    assert code == 2 and "MLFLOW_TRACKING_PASSWORD" in err and PASSWORD not in out + err
    assert not (tmp_path / "refused").exists()
    creds = {"MLFLOW_TRACKING_USERNAME": "rnnbench", "MLFLOW_TRACKING_PASSWORD": PASSWORD}
    code, out, err = finish(rnnbench("report", "--tracking-uri", mlflow_server.url, "--experiment", "c-shards",
                                     "--out", str(tmp_path / "site"), cwd=tmp_path, env=creds))
    assert code == 0, err[-2000:]
    files = [p for p in (tmp_path / "site").rglob("*") if p.is_file()]
    assert len(files) >= 4 and not [p for p in files if PASSWORD.encode() in p.read_bytes()]
    assert PASSWORD not in out + err


def test_a_benchmark_killed_mid_cell_resumes_from_its_checkpoint(mlflow_server, tmp_path):
    """kill -9 mid-cell; the rerun marks the stale run, resumes it in the same run, retrains nothing finished."""
    args = ["benchmark", "--profile", "smoke", "--models", "rnn,lstm", "--tasks", "adding", *TINY,
            "--set", "train.epochs=30", "--set", "train.steps_per_epoch=6", "--set", "train.checkpoint_minutes=0.0001",
            "--set", "train.stop_when_solved=0", "--tracking-uri", mlflow_server.url, "--experiment", "c-resume"]
    proc = rnnbench(*args, cwd=tmp_path)

    def second_cell_checkpointed():
        runs = runs_of(mlflow_server.url, "c-resume")
        return [r for r in runs if r.info.status == "RUNNING" and int(r.data.tags.get("checkpoint_epoch", -1)) >= 2
                and any(o.info.status == "FINISHED" for o in runs)]

    victim = wait_for(second_cell_checkpointed, proc)[0]
    first = [r for r in runs_of(mlflow_server.url, "c-resume") if r.info.status == "FINISHED"]
    proc.kill()
    proc.wait()
    code, out, err = finish(rnnbench(*args, cwd=tmp_path))
    assert code == 0, err[-2000:]
    assert f"resumed run {victim.info.run_id}" in out and "1 trained, 1 skipped" in out
    runs = runs_of(mlflow_server.url, "c-resume")
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)  # the same two runs, both finished
    resumed = MlflowClient(mlflow_server.url).get_run(victim.info.run_id)
    assert resumed.data.tags["resumed"] == "1" and "stale" in resumed.data.tags
    epochs = {m.step for m in MlflowClient(mlflow_server.url).get_metric_history(victim.info.run_id, "val_loss")}
    assert epochs == set(range(30))  # every epoch recorded once the run carried on
    assert {r.info.run_id for r in first} <= {r.info.run_id for r in runs}  # the finished cell was not retrained


def test_ctrl_c_marks_the_run_killed_and_exits_cleanly(mlflow_server, tmp_path):
    proc = rnnbench("benchmark", "--profile", "smoke", "--models", "lstm", "--tasks", "adding", *TINY,
                    "--set", "train.epochs=200", "--tracking-uri", mlflow_server.url, "--experiment", "c-sigint",
                    cwd=tmp_path, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_for(lambda: _has_epochs(mlflow_server.url, "c-sigint"), proc)
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc, 120)
    assert code == 130 and "interrupted" in err and "Traceback" not in err and err.strip().count("\n") == 0
    assert [r.info.status for r in runs_of(mlflow_server.url, "c-sigint")] == ["KILLED"]


def test_the_server_lost_mid_run_fails_clearly_and_a_rerun_finishes_the_rest(postgres, tmp_path):
    """The tracking server dies after the first cell: one clear line, exit 2; back up, the rerun completes."""
    server = MlflowServer(postgres.create("mlflow_lost"), tmp_path / "art", tmp_path / "server.log")
    try:
        args = ["benchmark", "--profile", "smoke", "--models", "rnn,lstm,gru", "--tasks", "adding", *TINY,
                "--set", "train.epochs=30", "--tracking-uri", server.url, "--experiment", "c-lost"]
        env = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
               "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
        proc = rnnbench(*args, env=env, cwd=tmp_path)
        wait_for(lambda: any(r.info.status == "FINISHED" for r in runs_of(server.url, "c-lost")), proc)
        server.stop()
        code, out, err = finish(proc, 240)
        assert code == 2 and "lost during" in err and "rerun" in err and "Traceback" not in err, err[-2000:]
        assert err.strip().count("\n") == 0
        server.start()
        code, out, err = finish(rnnbench(*args, env=env, cwd=tmp_path))
        assert code == 0, err[-2000:]
        runs = runs_of(server.url, "c-lost")
        finished = Counter(r.data.tags["config_hash"] for r in runs if r.info.status == "FINISHED")
        assert len(finished) == 3 and set(finished.values()) == {1}
        assert "RUNNING" not in {r.info.status for r in runs}
    finally:
        server.stop()


@pytest.mark.parametrize("argv,needle", [
    (["benchmark", "--shard", "2/2"], "--shard"),
    (["benchmark", "--shard", "one/2"], "--shard"),
    (["benchmark", "--shard", "0/0"], "--shard"),
    (["benchmark", "--tracking-uri", "http://127.0.0.1:9/"], "unreachable"),
    (["benchmark", "--tracking-uri", "mlruns"], "--tracking-uri"),
    (["tune", "--model", "lstm", "--task", "adding", "--storage", "redis://127.0.0.1:9/0"], "--storage"),
    (["tune", "--model", "lstm", "--task", "adding", "--storage", f"postgresql://u:{PASSWORD}@127.0.0.1:9/x"],
     "cannot open"),
    (["slurm", "benchmark", "--array", "0"], "--array"),
    (["slurm", "benchmark", "--time", "4h"], "--time"),
    (["slurm", "benchmark", "--gpus-per-job", "-1"], "--gpus-per-job"),
    (["slurm", "benchmark"], "shared tracking store"),
    (["slurm", "tune", "--tracking-uri", "http://10.0.0.1:5000"], "RNNBENCH_OPTUNA_STORAGE"),
    (["slurm", "launch"], "invalid choice"),
    (["server", "--backend", "mlflow.db"], "--backend"),
    (["benchmark", "--set", "stores.tracking_uri=3"], "stores.tracking_uri"),
    (["benchmark", "--set", "stores.bogus=x"], "stores.bogus"),
    (["benchmark", "--set", "train.checkpoint_minutes=-1"], "checkpoint_minutes"),
    (["benchmark", "--profile", "smok"], "--profile"),
    (["benchmark", "--tuned", "--storage", str("/nonexistent/journal.log")], "--storage"),
])
def test_bad_cluster_inputs_give_one_line_and_leave_the_store_untouched(in_store, capsys, argv, needle):
    from suite.cli import main

    runs = runs_of(in_store, "rnnbench-smoke")
    tracking = [] if "--tracking-uri" in argv else ["--tracking-uri", in_store]
    profile = [] if argv[0] in ("slurm", "server") or "--profile" in argv else ["--profile", "smoke"]
    assert main([*argv, *tracking, *profile]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnbench: error:") and err.strip().count("\n") == 0 and needle in err, err
    assert PASSWORD not in err
    assert [r.info.run_id for r in runs_of(in_store, "rnnbench-smoke")] == [r.info.run_id for r in runs]


def test_sbatch_script_and_submission(tmp_path, capsys, monkeypatch):
    from suite.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://user:{PASSWORD}@10.1.2.3:5000")
    script = tmp_path / "bench.sbatch"
    assert main(["slurm", "benchmark", "--array", "8", "--partition", "gpu", "--time", "1-02:00:00", "--out", str(script),
                 "--extra=--seeds 3"]) == 0
    text = script.read_text()
    assert "#SBATCH --array=0-7" in text and "#SBATCH --gres=gpu:1" in text and "#SBATCH --partition=gpu" in text
    assert "#SBATCH --time=1-02:00:00" in text and "benchmark --profile full --seeds 3" in text
    assert PASSWORD not in text  # the stores travel in the environment, never in the file
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "sbatch").write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/sbatch.args\necho 4242\n")
    (fake / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    monkeypatch.setenv("RNNBENCH_OPTUNA_STORAGE", f"postgresql://u:{PASSWORD}@10.1.2.3/optuna")
    assert main(["slurm", "tune", "--array", "3", "--gpus-per-job", "0", "--out", str(script), "--submit"]) == 0
    out = capsys.readouterr().out
    assert "submitted job 4242" in out and PASSWORD not in out
    assert (tmp_path / "sbatch.args").read_text().split() == ["--parsable", str(script)]
    assert "--gres" not in script.read_text() and "RNNBENCH_OPTUNA_STORAGE:?" in script.read_text()


def test_stores_come_from_the_flag_else_the_environment_else_the_profile(tmp_path, monkeypatch, capsys):
    from suite.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("RNNBENCH_OPTUNA_STORAGE", raising=False)
    profile_uri, env_uri = f"sqlite:///{tmp_path}/profile.db", f"sqlite:///{tmp_path}/env.db"
    argv = ["benchmark", "--profile", "smoke", "--models", "lstm", "--tasks", "adding", *TINY,
            "--set", f"stores.tracking_uri={profile_uri}"]
    assert main(argv) == 0 and len(runs_of(profile_uri, "rnnbench-smoke")) == 1
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env_uri)
    assert main(argv) == 0 and len(runs_of(env_uri, "rnnbench-smoke")) == 1  # the environment beats the profile
    journal = tmp_path / "profile-journal.log"
    assert main(["tune", "--profile", "smoke", "--model", "lstm", "--task", "adding", *TINY, "--trials", "1",
                 "--set", f"stores.optuna_storage={journal}"]) == 0
    assert journal.exists() and f"storage {journal}" in capsys.readouterr().out
