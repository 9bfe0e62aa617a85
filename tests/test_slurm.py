"""`rnnbench slurm ... --submit` under a real SLURM: slurmctld, slurmd and munged on loopback, one node.

The sbatch arrays `rnnbench slurm` writes, run by the scheduler against the shared stores (an MLflow server on
PostgreSQL): the benchmark in 2 shards, an array task requeued mid-run (`scontrol requeue`), a task that reaches
its time limit (the script's SIGTERM before it), and two tuning workers on one study. Every cell ends FINISHED
exactly once, every study at exactly its trials, and nothing is left RUNNING.
"""
import os
import re
import shlex
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from suite.pgtemp import free_port
from tests.test_cluster import TINY, runs_of

pytestmark = pytest.mark.slow  # a scheduler, real servers and fresh processes: `make test-all` runs these

DAEMONS, CLIENTS = ("munged", "slurmctld", "slurmd"), ("sbatch", "squeue", "scontrol", "scancel", "sinfo")
ENDED = {"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL",
         "DEADLINE"}

CONF = """ClusterName=rnnbench
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# the fixture's own munged; cred_expire is also how long a requeued job waits before it may start again (120 s)
AuthInfo=socket={root}/munge.socket,cred_expire=5
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
MailProg=/bin/true
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
JobRequeue=1
# schedule every 2 s, not every 30-60 s: a requeued job starts as soon as it may, not at the next pass
SchedulerParameters=sched_interval=2,bf_interval=2
# ended jobs stay in squeue -t all for the session, so a test reads how each task ended
MinJobAge=3600
NodeName=localhost NodeAddr=127.0.0.1 {hardware} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def slurm_bin(name):
    """A SLURM or MUNGE program; the daemons live in /usr/sbin, which a user's PATH may leave out."""
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")


class Slurm:
    """munged, slurmctld and slurmd on loopback in `root`, with SLURM_CONF pointing the clients at them.

    The daemons run as root (slurmd starts each job as the user who submitted it): as root, else through
    `sudo -n`. munged has its own key and socket, so it never meets a system one."""

    def __init__(self, root, as_root):
        self.root, self.as_root, self.procs = root, as_root, []
        (root / "state").mkdir()
        (root / "spool").mkdir()
        key = root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self._start("munged", "-F", "--force", f"--socket={root}/munge.socket", f"--key-file={key}",
                    f"--log-file={root}/munged.log", f"--pid-file={root}/munged.pid", f"--seed-file={root}/munged.seed",
                    sudo=False)  # munged may run as anyone: its key is readable by its own user only
        # the node as slurmd sees it (CPUs, sockets, cores, memory), minus its name and uptime
        seen = subprocess.run([slurm_bin("slurmd"), "-C"], capture_output=True, text=True).stdout.splitlines()[0]
        hardware = " ".join(w for w in seen.split() if not w.startswith("NodeName="))
        self.conf = root / "slurm.conf"
        self.conf.write_text(CONF.format(root=root, ctld_port=free_port(), d_port=free_port(), hardware=hardware))
        self.saved_conf = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = str(self.conf)  # the clients here, `rnnbench slurm` and the jobs read it
        self._wait(lambda: (root / "munge.socket").exists(), "munged", 30)
        self._start("slurmctld", "-D", "-f", str(self.conf))
        self._start("slurmd", "-D", "-N", "localhost", "-f", str(self.conf))
        self._wait(lambda: self.run("sinfo", "-h", "-N", "-o", "%t", check=False).strip() == "idle",
                   "the node idle", 60)

    def _start(self, name, *args, sudo=True):
        with open(self.root / f"{name}.out", "w") as out:
            self.procs.append(subprocess.Popen([*(self.as_root if sudo else []), slurm_bin(name), *args], stdout=out,
                                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                               start_new_session=True))

    def _wait(self, ready, what, timeout):
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [p.args[0] for p in self.procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(f"== {p.name}\n{p.read_text()[-1500:]}" for p in sorted(self.root.glob("*.out")))
                self.stop()
                raise RuntimeError(f"SLURM: no {what} ({dead or 'timed out'}):\n{logs}")
            time.sleep(0.3)

    def run(self, *cmd, check=True) -> str:
        """A client command's output (SLURM_CONF is ours)."""
        done = subprocess.run([slurm_bin(cmd[0]), *cmd[1:]], capture_output=True, text=True, timeout=60)
        if check and done.returncode:
            raise AssertionError(f"{shlex.join(cmd)}: {done.stderr.strip()}")
        return done.stdout

    def states(self, job) -> dict:
        """{"<job>_<task>": state} of an array job, ended tasks too."""
        lines = self.run("squeue", "-h", "-t", "all", "-j", str(job), "-o", "%i %T").split("\n")
        return dict(line.split() for line in lines if line.strip())

    def ended(self, job) -> bool:
        states = self.states(job)
        return bool(states) and set(states.values()) <= ENDED

    def wait(self, job, timeout=300) -> dict:
        """The array's tasks once every one has ended (a requeued task ends only after its second start)."""
        deadline = time.monotonic() + timeout
        while not self.ended(job):
            assert time.monotonic() < deadline, f"job {job} still running after {timeout} s: {self.states(job)}"
            time.sleep(1)
        return self.states(job)

    def poll(self, condition, job, timeout=240):
        """`condition`'s value once truthy, polled while the job runs."""
        deadline = time.monotonic() + timeout
        while not (value := condition()):
            assert not self.ended(job), f"job {job} ended first: {self.states(job)}"
            assert time.monotonic() < deadline, f"timed out waiting; job {job}: {self.states(job)}"
            time.sleep(0.5)
        return value

    def cancel_all(self):
        """scancel every job left, and wait until none is left on the node."""
        jobs = self.run("squeue", "-h", "-o", "%A", check=False).split()
        if jobs:
            self.run("scancel", *sorted(set(jobs)), check=False)
        deadline = time.monotonic() + 60
        while self.run("squeue", "-h", check=False).strip() and time.monotonic() < deadline:
            time.sleep(0.5)

    def stop(self):
        """Stop every daemon (slurmd, then slurmctld, then munged) and give SLURM_CONF back."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs = []
        if self.saved_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = self.saved_conf


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A real one-node SLURM on loopback for the session (skipped where none is installed, unless CI requires it)."""
    missing = [name for name in DAEMONS + CLIENTS if slurm_bin(name) is None]
    as_root = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if not missing and as_root and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode:
        missing = ["root or passwordless sudo (slurmd starts jobs as their user)"]
    if missing:
        if os.environ.get("RNNBENCH_REQUIRE_SERVERS"):
            pytest.fail(f"SLURM: {', '.join(missing)} not found; .ci/run installs slurmctld, slurmd and munge")
        pytest.skip("SLURM not installed (apt-get install slurmctld slurmd slurm-client munge); CI runs these tests")
    cluster = Slurm(tmp_path_factory.mktemp("slurm"), as_root)
    yield cluster
    cluster.cancel_all()
    cluster.stop()


@pytest.fixture
def slurm(slurm_cluster):
    """The cluster, with whatever a test left queued or running cancelled after it."""
    yield slurm_cluster
    slurm_cluster.cancel_all()


@pytest.fixture
def submit(tmp_path, monkeypatch, capsys):
    """`rnnbench slurm WHAT --submit` on the smoke profile, CPU jobs of one core, from this process with `env` set
    (sbatch hands the environment, stores included, to the jobs): the job id."""
    from suite.cli import main

    def run(what, extra, *flags, **env):
        for name, value in {"RNNBENCH_THREADS": "1", **env}.items():
            monkeypatch.setenv(name, value)
        code = main(["slurm", what, "--profile", "smoke", "--gpus-per-job", "0", "--cpus-per-task", "1",
                     "--out", str(tmp_path / f"{what}.sbatch"), "--submit", f"--extra={shlex.join(extra)}", *flags])
        out, err = capsys.readouterr()
        assert code == 0, err
        return re.search(r"submitted job (\d+)", out)[1]

    return run


def log(tmp_path, what, job, task) -> str:
    """An array task's output (the script's --output: logs/ beside it, %x-%A_%a.out)."""
    return (tmp_path / "logs" / f"rnnbench-{what}-smoke-{job}_{task}.out").read_text()


def finished_once(uri, experiment, cells):
    """Each of `cells` cells FINISHED in exactly one run, and no run of the experiment left RUNNING."""
    runs = runs_of(uri, experiment)
    finished = Counter(r.data.tags["config_hash"] for r in runs if r.info.status == "FINISHED")
    assert len(finished) == cells and set(finished.values()) == {1}, finished
    assert not [r for r in runs if r.info.status == "RUNNING"]
    return runs


def checkpointed(uri, experiment, task=None):
    """The RUNNING runs that have saved a checkpoint at epoch 2 or later (of array task `task` only, if given)."""
    return [r for r in runs_of(uri, experiment) if r.info.status == "RUNNING"
            and int(r.data.tags.get("checkpoint_epoch", -1)) >= 2 and task in (None, array_task(r))]


def array_task(run):
    """SLURM_ARRAY_TASK_ID of the process training `run`: the pid in its worker tag (host:pid:start), whose
    environment /proc shows, the jobs running on this host. None once the process is gone."""
    pid = run.data.tags["rnnbench.worker"].rsplit(":", 2)[1]
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    return next((v.split(b"=", 1)[1].decode() for v in env if v.startswith(b"SLURM_ARRAY_TASK_ID=")), None)


RESUMABLE = ["--set", "train.steps_per_epoch=6", "--set", "train.checkpoint_minutes=0.0001",  # a checkpoint an epoch
             "--set", "train.stop_when_solved=0"]


def test_a_two_shard_array_runs_every_cell_once(slurm, submit, mlflow_server, tmp_path):
    extra = ["--models", "rnn,lstm", "--tasks", "adding,copy", *TINY, "--experiment", "s-array"]
    job = submit("benchmark", extra, "--array", "2", MLFLOW_TRACKING_URI=mlflow_server.url)
    assert slurm.wait(job) == {f"{job}_0": "COMPLETED", f"{job}_1": "COMPLETED"}
    for task in (0, 1):  # each task took its shard from SLURM_ARRAY_TASK_ID/COUNT
        out = log(tmp_path, "benchmark", job, task)
        assert f"shard {task}/2: 2 of 4 cells" in out and "2 trained, 0 skipped" in out, out[-2000:]
    runs = finished_once(mlflow_server.url, "s-array", 4)
    assert len({r.data.tags["rnnbench.worker"] for r in runs}) == 2  # two processes, one a task


def test_a_task_requeued_mid_run_resumes_its_run_and_every_cell_finishes_once(slurm, submit, mlflow_server, tmp_path):
    """`scontrol requeue` of a task mid-cell: SIGTERM marks its run KILLED, the task starts again and resumes it."""
    extra = ["--models", "rnn,lstm", "--tasks", "adding", *TINY, *RESUMABLE, "--set", "train.epochs=50",
             "--experiment", "s-requeue"]
    job = submit("benchmark", extra, "--array", "2", MLFLOW_TRACKING_URI=mlflow_server.url)
    victim = slurm.poll(lambda: checkpointed(mlflow_server.url, "s-requeue", task="1"), job)[0]
    slurm.run("scontrol", "requeue", f"{job}_1")
    client = MlflowClient(mlflow_server.url)
    slurm.poll(lambda: client.get_run(victim.info.run_id).info.status == "KILLED", job)  # before the task starts again
    assert slurm.wait(job) == {f"{job}_0": "COMPLETED", f"{job}_1": "COMPLETED"}
    assert "Restarts=1" in slurm.run("scontrol", "show", "job", f"{job}_1")
    out = log(tmp_path, "benchmark", job, 1)
    assert out.count("shard 1/2: 1 of 2 cells") == 2, out[-3000:]  # both starts, in one log appended to
    _, stopped, second = out.partition("rnnbench: interrupted; the current run is marked KILLED")
    assert stopped and f"resumed run {victim.info.run_id}" in second and "1 trained, 0 skipped" in second, out[-3000:]
    runs = finished_once(mlflow_server.url, "s-requeue", 2)
    assert len(runs) == 2 and victim.info.run_id in {r.info.run_id for r in runs}  # the killed run carried on
    assert client.get_run(victim.info.run_id).data.tags["resumed"] == "1"
    assert {m.step for m in client.get_metric_history(victim.info.run_id, "val_loss")} == set(range(50))


def test_a_task_at_its_time_limit_stops_cleanly_and_a_rerun_finishes_the_rest(slurm, submit, mlflow_server, tmp_path):
    """The task's limit drops to one minute while it trains: the script's `--signal=B:TERM@120` is then due, and
    SLURM sends it at its next look at the limits (every 30 s). The run ends KILLED with its checkpoint; the same
    script submitted again resumes it."""
    # a cell bounded by 40 s of training (train.max_minutes), not by epochs: it outlasts the wait for SLURM's next
    # look (31 s at most) however fast the machine
    extra = ["--models", "rnn", "--tasks", "adding", *TINY, *RESUMABLE, "--set", "train.epochs=100000",
             "--set", "train.max_minutes=0.67", "--experiment", "s-limit"]
    job = submit("benchmark", extra, "--array", "1", "--time", "00:10:00", MLFLOW_TRACKING_URI=mlflow_server.url)
    victim = slurm.poll(lambda: checkpointed(mlflow_server.url, "s-limit"), job)[0].info.run_id
    slurm.run("scontrol", "update", f"JobId={job}_0", "TimeLimit=00:01:00")
    assert slurm.wait(job) == {f"{job}_0": "FAILED"}
    assert "ExitCode=130:0" in slurm.run("scontrol", "show", "job", f"{job}_0")  # it stopped itself, as on Ctrl-C
    out = log(tmp_path, "benchmark", job, 0)
    assert "rnnbench: interrupted; the current run is marked KILLED" in out and "Traceback" not in out, out[-3000:]
    client = MlflowClient(mlflow_server.url)
    stopped = client.get_run(victim)
    assert stopped.info.status == "KILLED" and "checkpoint_epoch" in stopped.data.tags
    rerun = submit("benchmark", extra, "--array", "1", "--time", "00:10:00", MLFLOW_TRACKING_URI=mlflow_server.url)
    assert slurm.wait(rerun) == {f"{rerun}_0": "COMPLETED"}
    out = log(tmp_path, "benchmark", rerun, 0)
    assert f"resumed run {victim}" in out and "1 trained, 0 skipped" in out, out[-3000:]
    assert [r.info.run_id for r in finished_once(mlflow_server.url, "s-limit", 1)] == [victim]
    # every epoch recorded, on past the stop (the epoch under way at SIGTERM may be recorded by both starts)
    epochs = {m.step for m in client.get_metric_history(victim, "val_loss")}
    assert epochs == set(range(len(epochs))) and len(epochs) > int(stopped.data.tags["checkpoint_epoch"]) + 1


def test_a_tuning_array_on_one_study_reaches_exactly_n_trials(slurm, submit, postgres, mlflow_server, tmp_path):
    storage = postgres.create("optuna_slurm")
    extra = ["--model", "gru", "--task", "adding", "--trials", "4", *TINY, "--experiment", "s-tune"]
    job = submit("tune", extra, "--array", "2", MLFLOW_TRACKING_URI=mlflow_server.url, RNNBENCH_OPTUNA_STORAGE=storage)
    assert slurm.wait(job) == {f"{job}_0": "COMPLETED", f"{job}_1": "COMPLETED"}
    assert all("study smoke-gru-adding-T10:" in log(tmp_path, "tune", job, task) for task in (0, 1))  # one study
    trials = optuna.load_study(study_name="smoke-gru-adding-T10", storage=storage).get_trials(deepcopy=False)
    states = Counter(t.state.name for t in trials)
    assert states["COMPLETE"] + states["PRUNED"] == 4 and states["RUNNING"] == states["WAITING"] == 0, states
    assert len({t.number for t in trials}) == len(trials) == 4
    runs = runs_of(mlflow_server.url, "s-tune")
    parents = [r for r in runs if r.data.tags.get("rnnbench_role") == "study"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 4
    assert not [r for r in runs if r.info.status == "RUNNING"]
