"""Cells packed side by side (`--jobs`): the same results as one at a time, Ctrl-C and kill -9 handled, an ETA
weighted by cost, and a dry run that writes nothing."""
import dataclasses
import os
import signal
import sys
import time

import pytest
from mlflow import MlflowClient

from tests.test_cluster import finish, rnnbench, runs_of, wait_for

TINY = ["--profile", "smoke", "--tasks", "adding", "--set", "train.epochs=2", "--set", "train.steps_per_epoch=4",
        "--set", "task.seq_len=10"]


def _by_cell(uri, experiment):
    return {r.data.tags["config_hash"]: r for r in runs_of(uri, experiment) if r.info.status == "FINISHED"}


@pytest.mark.slow
def test_packed_and_one_at_a_time_give_the_same_numbers(tmp_path):
    """Two jobs of one thread each against one process of one thread: each cell's metrics agree exactly."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    args = ["benchmark", *TINY, "--models", "rnn,gru,lstm", "--tracking-uri", uri]
    code, out, err = finish(rnnbench(*args, "--experiment", "serial", env={"RNNBENCH_THREADS": "1"}, cwd=tmp_path))
    assert code == 0, err[-3000:]
    code, out, err = finish(rnnbench(*args, "--experiment", "packed", "--jobs", "2", cwd=tmp_path))
    assert code == 0, err[-3000:]
    assert "packing: 2 jobs at once" in out and "3 trained, 0 skipped" in out and "job 1:" in out
    serial, packed = _by_cell(uri, "serial"), _by_cell(uri, "packed")
    assert len(serial) == 3 and serial.keys() == packed.keys()
    for key, run in serial.items():
        other = packed[key]
        assert run.data.tags["torch_threads"] == other.data.tags["torch_threads"] == "1"
        assert (run.data.tags["jobs"], other.data.tags["jobs"]) == ("1", "2")
        for metric in ("test_loss", "test_mse", "val_loss"):
            assert run.data.metrics[metric] == other.data.metrics[metric], (key, metric)
    code, out, err = finish(rnnbench(*args, "--experiment", "packed", "--jobs", "2", cwd=tmp_path))
    assert code == 0 and "0 trained, 3 skipped" in out  # finished cells are skipped as before


@pytest.mark.slow
def test_ctrl_c_stops_every_job_and_each_run_ends_killed(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    proc = rnnbench("benchmark", *TINY, "--models", "rnn,lstm,gru", "--set", "train.epochs=300", "--jobs", "2",
                    "--set", "train.stop_when_solved=0",
                    "--tracking-uri", uri, "--experiment", "p-sigint", cwd=tmp_path,
                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    client = MlflowClient(uri)

    def both_training():
        runs = [r for r in runs_of(uri, "p-sigint") if r.info.status == "RUNNING"]
        return len(runs) == 2 and all(client.get_metric_history(r.info.run_id, "val_loss") for r in runs)

    wait_for(both_training, proc)
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc, 180)
    assert code == 130 and "interrupted" in err and "Traceback" not in err, err[-3000:]
    assert sorted(r.info.status for r in runs_of(uri, "p-sigint")) == ["KILLED", "KILLED"]
    assert not _children(proc.pid)


@pytest.mark.slow
def test_a_job_killed_9_fails_its_cell_the_others_finish_and_a_rerun_resumes_it(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    args = ["benchmark", *TINY, "--models", "rnn,lstm,gru", "--set", "train.epochs=40", "--set",
            "train.checkpoint_minutes=0.0001", "--set", "train.stop_when_solved=0", "--jobs", "2",
            "--tracking-uri", uri, "--experiment", "p-kill"]
    proc = rnnbench(*args, cwd=tmp_path)

    def checkpointed():
        return [r for r in runs_of(uri, "p-kill")
                if r.info.status == "RUNNING" and int(r.data.tags.get("checkpoint_epoch", -1)) >= 2]

    victim = wait_for(checkpointed, proc)[0]
    os.kill(int(victim.data.tags["rnnbench.worker"].split(":")[1]), signal.SIGKILL)
    code, out, err = finish(proc, 300)
    assert code == 1 and "its worker process died (exit code -9)" in out and "2 trained" in out, out[-3000:]
    code, out, err = finish(rnnbench(*args, cwd=tmp_path), 300)
    assert code == 0 and f"resumed run {victim.info.run_id}" in out and "1 trained, 2 skipped" in out, out[-3000:]
    assert sorted(r.info.status for r in runs_of(uri, "p-kill")) == ["FINISHED"] * 3


@pytest.mark.slow
def test_the_dry_run_estimates_writes_nothing_and_knows_what_finished(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    args = ["benchmark", *TINY, "--models", "rnn,gru", "--tracking-uri", uri, "--experiment", "p-dry", "--dry-run"]
    code, out, err = finish(rnnbench(*args, cwd=tmp_path))
    assert code == 0, err[-3000:]
    assert out.count("  to train ") == 2 and "2 to train · estimated" in out and "nothing was run or written" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no store, no artifacts folder
    code, _, err = finish(rnnbench(*args[:-1], "--models", "rnn", cwd=tmp_path))
    assert code == 0, err[-3000:]
    code, out, err = finish(rnnbench(*args, "--jobs", "2", cwd=tmp_path))
    assert code == 0 and "finished (run " in out and "1 finished, 1 to train" in out, out[-3000:]
    assert len(runs_of(uri, "p-dry")) == 1


LADDER = """# two models; copy's ladder and selective copy share shapes (10 in, 9 out, every step); adding is another shape
models: [rnn, gru]
seeds: [0, 1]
recipe: {pinned: true}
model: {hidden_size: 8}
train: {epochs: 1, steps_per_epoch: 4, batch_size: 8, n_val: 16, n_test: 16}
tasks:
  copy: {seq_len: [2, 10]}  # 22 and 30 input steps
  selective_copy: {seq_len: 20}  # 20 + 10 recalled: 30 input steps, as copy T=10
  adding: {seq_len: [4, 8]}
"""


def test_the_dry_run_times_each_step_key_once_and_marks_what_it_extrapolates(tmp_path, monkeypatch, capsys):
    """Each model's two keys are timed once (at their longest length and a short one), not its 5 settings:
    selective_copy shares copy T=10's timing, the shorter lengths are extrapolated and say so; nothing written."""
    import suite.eta
    from suite.cli import main

    monkeypatch.setattr(suite.eta, "STEP_S", 1e9)  # every key timed at its longest length, however slow the
    monkeypatch.setattr(suite.eta, "CALIBRATION_S", 1e9)  # machine: what is timed does not hang on the clock
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ladder.yaml").write_text(LADDER)
    code = main(["benchmark", "--config", "ladder.yaml", "--dry-run", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"])
    out = capsys.readouterr().out
    assert code == 0
    assert "calibrating 4 step keys for 10 settings" in out
    progress = [line for line in out.splitlines() if line.startswith("  ") and "/4 " in line and "so far" in line]
    assert [p.split(":")[0].strip() for p in progress] == ["1/4 rnn copy T=10", "2/4 gru copy T=10",
                                                           "3/4 rnn adding T=8", "4/4 gru adding T=8"]
    assert "timed at 7/30 steps" in progress[0] and "timed at 2/8 steps" in progress[2]
    rows = {line.split("  to train")[0].strip(): line for line in out.splitlines() if "  to train " in line}
    assert len(rows) == 20
    for label, row in rows.items():
        extrapolated = "copy T=2 " in label or "adding T=4 " in label
        assert ("(extrapolated from" in row) == extrapolated, row
    assert "(extrapolated from copy at 7/30 steps)" in rows["gru · copy T=2 · seed 1"]
    assert "10 settings: 4 timed, 2 share a timed one's shapes and length, 4 extrapolated" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ladder.yaml"]  # no store, no artifacts folder


def test_a_step_key_leaves_out_what_does_not_change_a_steps_cost():
    """The task, its other settings, the seed, the init and the learning rate do not; the shapes and model do."""
    from suite.eta import step_key
    from suite.experiment import load_experiment

    copy, = load_experiment("smoke", None, ["task.seq_len=10"], models=["gru"], tasks=["copy"], announce=None).cells
    chosen = load_experiment("smoke", None, ["task.seq_len=20", "task.recall=10", "model.init=chrono", "train.lr=0.1"],
                             models=["gru"], tasks=["selective_copy"], seeds=[3], announce=None).cells[0]
    assert step_key(copy) == step_key(chosen) and copy.setting_key != chosen.setting_key
    assert step_key(dataclasses.replace(copy, model="lstm")) != step_key(copy)
    adding, = load_experiment("smoke", None, ["task.seq_len=10"], models=["gru"], tasks=["adding"], announce=None).cells
    assert step_key(adding).model == step_key(copy).model and step_key(adding) != step_key(copy)


def test_the_eta_weighs_the_cells_left_by_their_cost(monkeypatch):
    from suite.eta import Clock
    from suite.experiment import load_experiment

    exp = load_experiment("smoke", None, ["task.seq_len=10"], models=["rnn"], tasks=["adding"], seeds=range(3),
                          announce=None)
    short, *rest = exp.cells
    long = dataclasses.replace(rest[0], task_cfg=dataclasses.replace(rest[0].task_cfg, seq_len=40))
    assert long.cost > 3.9 * short.cost  # four times the steps a sequence
    clock = Clock(jobs=1)
    clock.record(short, 10.0)
    assert clock.eta([short], {}) == 10.0
    assert abs(clock.eta([long], {}) - 10.0 * long.cost / short.cost) < 1e-6
    assert abs(clock.eta([long, long], {}) / 2 - clock.eta([long], {})) < 1e-6
    two = Clock(jobs=2)
    two.record(short, 10.0)
    assert two.eta([short, short], {}) == 10.0  # two jobs take the two cells at once
    now = time.perf_counter()
    monkeypatch.setattr(time, "perf_counter", lambda: now + 4.0)
    assert abs(clock.eta([], {"x": (short, now)}) - 6.0) < 1e-6  # a running cell: what it has left
    assert Clock(jobs=1).eta([short], {}) is None  # nothing measured yet: no guess


def test_packing_splits_the_cores_and_auto_takes_one_job_a_core():
    from suite.packing import cores, packing_of

    assert packing_of(None, None, "cpu", 10) is None
    auto = packing_of("auto", None, "cpu", 10)
    assert auto.jobs == cores() and auto.threads == 1 and auto.gpus == ()
    assert packing_of("2", None, "cpu", 1).jobs == 1  # never more jobs than cells
    assert packing_of("1", None, "cpu", 5).threads == cores()



def test_auto_leaves_cells_too_small_to_pay_for_a_worker_unpacked(capsys, monkeypatch):
    from suite import packing as packing_module
    from suite.experiment import load_experiment

    monkeypatch.setattr(packing_module, "cores", lambda: 2)
    smoke = load_experiment("smoke", announce=None).cells
    assert packing_module.choose_packing(smoke, ("auto", None)) is None
    assert "packing: none, one cell at a time" in capsys.readouterr().out
    assert packing_module.choose_packing(smoke, ("2", None)).jobs == 2  # asked for explicitly: packed
    cpu = load_experiment("cpu", tasks=["copy", "adding"], announce=None).cells
    assert packing_module.choose_packing(cpu, ("auto", None)).jobs == 2


def _children(pid):
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the worker tags and /proc are Linux's")


def test_two_cells_logging_the_same_dataset_at_once_both_succeed():
    """Packed cells of one task share their test set's dataset entry: the one that loses MLflow's get-or-create race
    (a unique-constraint error) logs it again and goes on, rather than failing the cell."""
    from mlflow.exceptions import MlflowException

    from suite.runner import _log_inputs

    calls = []

    class Client:
        def log_inputs(self, run_id, datasets):
            calls.append(run_id)
            if len(calls) == 1:
                raise MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id")

    _log_inputs(Client(), "r1", [])
    assert calls == ["r1", "r1"]

    class Broken:
        def log_inputs(self, run_id, datasets):
            raise MlflowException("RESOURCE_DOES_NOT_EXIST")

    with pytest.raises(MlflowException):
        _log_inputs(Broken(), "r2", [])
