"""A benchmark recording straight into PostgreSQL (no MLflow server) while the database restarts, then goes away.

A `pg_ctl restart -m fast` (back within a second) mid-cell is waited out: the cell finishes in its own run, every
epoch recorded. A database stopped for good ends the benchmark after the patience a tracking server gets
(patience.patience_s, shortened here through MLflow's own MLFLOW_HTTP_REQUEST_* settings) with one line naming the
database and the cell that was training, exit 1; once the database is back, the rerun marks that run KILLED
(stale) and finishes the rest, so no run stays RUNNING. One sequence, two processes: each costs ~10 s to start.
"""
import os
import subprocess
from collections import Counter

import pytest
from mlflow import MlflowClient

from suite.pgtemp import PASSWORD, Postgres, pg_bin
from tests.test_cluster import TINY, finish, rnnbench, runs_of, wait_for

pytestmark = pytest.mark.slow  # real servers and fresh processes: `make test-all` runs these

EPOCHS = 80  # ~2 s a cell on 2 busy cores: a restart of ~0.3 s lands inside one
QUICK = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",  # 2 s of patience
         "RNNBENCH_THREADS": "1"}


class Restartable:
    """A PostgreSQL server of a test's own (the session's serves the MLflow server): restarted, stopped, started."""

    def __init__(self, pg: Postgres):
        self.pg = pg

    def ctl(self, *args):
        pg = self.pg  # the log file keeps the server off our pipes (pg_ctl's output would hold them open)
        done = subprocess.run([*pg.as_user, pg_bin("pg_ctl"), "-D", str(pg.data), "-l", str(pg.data / "server.log"),
                               "-w", "-t", "60", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              cwd=pg.root)
        assert done.returncode == 0, done.stderr

    def restart(self):
        self.ctl("-m", "fast", "restart")  # the options it was started with come back with it

    def stop(self):
        self.ctl("-m", "fast", "stop")

    def start(self):
        self.ctl("-o", f"-p {self.pg.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
                       "-c fsync=off -c max_connections=200", "start")


@pytest.fixture(scope="module")
def own_postgres():
    """Skipped where PostgreSQL is not installed, unless CI requires it (as conftest's `postgres`)."""
    if not (pg_bin("initdb") and pg_bin("pg_ctl")):
        if os.environ.get("RNNBENCH_REQUIRE_SERVERS"):
            pytest.fail("PostgreSQL (initdb, pg_ctl) not found; .ci/run installs it")
        pytest.skip("PostgreSQL not installed (apt-get install postgresql); CI runs these tests")
    pg = Postgres()
    yield Restartable(pg)
    pg.stop()


def training(url, experiment, finished):
    """The run of the cell training once it has logged an epoch, with `finished` cells done before it."""
    runs = runs_of(url, experiment)
    running = [r for r in runs if r.info.status == "RUNNING" and "val_loss" in r.data.metrics]
    return running if running and sum(r.info.status == "FINISHED" for r in runs) == finished else None


def test_a_database_restarted_mid_cell_is_waited_out_and_one_gone_for_good_is_one_line(own_postgres, tmp_path):
    """rnn, then lstm: PostgreSQL restarts while rnn trains (the connections the benchmark opened before it sit
    in MLflow's pool), then stops for good while lstm trains; back up, the rerun trains lstm alone."""
    url = own_postgres.pg.create("pg_restart")
    args = ["benchmark", "--profile", "smoke", "--models", "rnn,lstm", "--tasks", "adding", *TINY,
            "--set", f"train.epochs={EPOCHS}", "--set", "train.stop_when_solved=0", "--tracking-uri", url,
            "--experiment", "pg-restart"]
    proc = rnnbench(*args, env=QUICK, cwd=tmp_path)
    (restarted,) = wait_for(lambda: training(url, "pg-restart", 0), proc, every=0.25)
    own_postgres.restart()
    assert proc.poll() is None and MlflowClient(url).get_run(restarted.info.run_id).info.status == "RUNNING"

    (victim,) = wait_for(lambda: training(url, "pg-restart", 1), proc, every=0.25)  # rnn carried on and finished
    own_postgres.stop()
    try:
        code, out, err = finish(proc, 120)
    finally:
        own_postgres.start()
    tags = victim.data.tags
    label = f"{tags['model']} · {tags['task']} T={tags['seq_len']} · seed {tags['seed']}"
    assert tags["model"] == "lstm" and code == 1, (code, out[-3000:], err[-3000:])
    assert err.strip().count("\n") == 0 and "Traceback" not in err, err[-3000:]
    assert err.startswith("rnnbench: error: tracking database postgresql://rnnbench:***@")
    assert f"lost during {label} (" in err and "Connection refused" in err and PASSWORD not in out + err
    assert f"run {victim.info.run_id} is RUNNING: the next benchmark marks it KILLED" in err
    assert "finished cells are kept" in err and "retrying for up to 2 s" in out
    assert "[1/2] rnn · adding T=10 · seed 0: test_mse" in out  # the restart cost rnn nothing
    epochs = {m.step for m in MlflowClient(url).get_metric_history(restarted.info.run_id, "val_loss")}
    assert epochs == set(range(EPOCHS))  # in its own run, every epoch recorded
    statuses = {r.info.run_id: r.info.status for r in runs_of(url, "pg-restart")}
    assert sorted(statuses.values()) == ["FINISHED", "RUNNING"]  # lstm's, until a benchmark marks it

    code, out, err = finish(rnnbench(*args, env=QUICK, cwd=tmp_path), 240)
    assert code == 0 and err.strip() == "", err[-3000:]
    assert f"stale run {victim.info.run_id}" in out and "1 trained, 1 skipped" in out
    runs = runs_of(url, "pg-restart")
    assert "RUNNING" not in {r.info.status for r in runs}
    finished = Counter(r.data.tags["config_hash"] for r in runs if r.info.status == "FINISHED")
    assert len(finished) == 2 and set(finished.values()) == {1}  # each cell finished exactly once
    assert "stale" in MlflowClient(url).get_run(victim.info.run_id).data.tags
