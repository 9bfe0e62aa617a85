"""Many workers on shared stores: who is alive, stale runs, shards of the matrix, and cell claims.

A worker is `host:pid:start` (start = the process's start time in clock ticks since boot, so a reused
pid is not mistaken for the old process). A run or trial whose worker is on this host and gone, or
whose heartbeat is older than the grace period (workers on other hosts), is stale.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

from suite.errors import UserError

WORKER, HEARTBEAT = "rnnbench.worker", "rnnbench.heartbeat"  # bookkeeping tags, grouped apart on the run page


def heartbeat_s() -> float:
    """How often a live run says so ($RNNBENCH_HEARTBEAT_S, default 60); one silent for 5 beats is stale."""
    return float(os.environ.get("RNNBENCH_HEARTBEAT_S", "60"))


def _start_ticks(pid: int) -> str:
    try:  # field 22 of /proc/<pid>/stat; the command name (field 2) may hold spaces, so split after ')'
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_start_ticks(os.getpid())}"


def worker_dead(worker: str | None) -> bool:
    """True when `worker` ran on this host and its process is gone (False when unknown or elsewhere)."""
    try:
        host, pid, start = (worker or "").rsplit(":", 2)
        pid = int(pid)
    except ValueError:
        return False
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return start != "?" and _start_ticks(pid) not in (start, "?")


class Heartbeat:
    """Tags a run with its worker, then with `heartbeat` = unix time every heartbeat_s(), from a thread."""

    def __init__(self, client, run_id: str, announce: bool = True):
        self.client, self.run_id, self.stop, self.every = client, run_id, threading.Event(), heartbeat_s()
        if announce:  # False when the run was created with both tags already
            self.client.set_tag(run_id, WORKER, worker_id())
            self.beat()
        self.thread = threading.Thread(target=self._loop, daemon=True, name=f"heartbeat-{run_id[:8]}")
        self.thread.start()

    def beat(self):
        self.client.set_tag(self.run_id, HEARTBEAT, str(int(time.time())))

    def _loop(self):
        while not self.stop.wait(self.every):
            try:
                self.beat()
            except Exception:  # a server blip: the next beat retries; the run itself reports real losses
                pass

    def close(self):
        self.stop.set()


def stale_reason(run, now: float | None = None) -> str | None:
    """Why a RUNNING run is stale, or None while its worker may still be alive."""
    return stale_from(run.data.tags, run.info.start_time, now)


def stale_from(tags: dict, start_ms: int, now: float | None = None) -> str | None:
    """stale_reason from a run's tags and start time (ms), however the run was read."""
    if worker_dead(tags.get(WORKER)):
        return f"its worker {tags[WORKER]} is gone"
    beat = float(tags.get(HEARTBEAT, start_ms / 1000))
    silent = (now or time.time()) - beat
    return f"no heartbeat for {silent:.0f} s" if silent > 5 * heartbeat_s() else None


def reap_stale_runs(client, experiment_ids: list[str], say=print) -> list:
    """Mark the experiments' stale RUNNING runs KILLED (tag `stale`), so no run stays RUNNING for ever."""
    reaped = []
    for run in client.search_runs(experiment_ids, "attributes.status = 'RUNNING'", max_results=10_000):
        reason = stale_reason(run)
        if reason is None:
            continue
        client.set_tag(run.info.run_id, "stale", f"{reason}; marked KILLED by {worker_id()}")
        client.set_terminated(run.info.run_id, "KILLED")
        reaped.append(run)
        say(f"stale run {run.info.run_id} ({run.info.run_name}): {reason}; marked KILLED")
    return reaped


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """--shard i/N (0 <= i < N), else SLURM's array variables, else None (the whole matrix)."""
    if text is None:
        task, count = os.environ.get("SLURM_ARRAY_TASK_ID"), os.environ.get("SLURM_ARRAY_TASK_COUNT")
        if task is None or count is None:
            return None
        text, where = f"{int(task) - int(os.environ.get('SLURM_ARRAY_TASK_MIN', '0'))}/{count}", "SLURM_ARRAY_TASK_ID"
    else:
        where = "--shard"
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise UserError(f"{where}: expected i/N, e.g. 0/4 (got {text})") from None
    if not 0 <= i < n:
        raise UserError(f"{where}: {text}: needs 0 <= i < N")
    return i, n


def shard(cells: list, spec: tuple[int, int] | None) -> list:
    """Shard i of N: every N-th cell from the i-th, so heavy tasks spread over the shards."""
    return cells if spec is None else cells[spec[0]::spec[1]]


def claim(client, experiment_id: str, run_id: str, config_hash: str, fingerprint: str) -> str | None:
    """After starting `run` for a cell: None if it is ours, else why another worker has it.

    Two workers may start the same cell at once (overlapping shards, a requeue); the run started
    first (then the smaller id) keeps it, the other backs off. Finished runs always win. Runs of the same
    settings with other code (another code_fingerprint) are another cell.
    """
    run = client.get_run(run_id)
    runs = client.search_runs([experiment_id], f"tags.config_hash = '{config_hash}'", max_results=1000)
    me = (run.info.start_time, run.info.run_id)
    for other in runs:
        if other.info.run_id == run_id or other.info.status not in ("RUNNING", "FINISHED") or \
                other.data.tags.get("rnnbench_role") == "trial" or \
                other.data.tags.get("code_fingerprint", "") != fingerprint:  # a trial, or other code: no cell of ours
            continue
        if other.info.status == "FINISHED":
            return f"finished meanwhile in run {other.info.run_id}"
        if (other.info.start_time, other.info.run_id) < me and stale_reason(other) is None:
            return f"running in run {other.info.run_id} ({other.data.tags.get(WORKER, '?')})"
    return None


SBATCH = """#!/bin/bash
# Written by `rnnbench slurm {what} {source_flag}`: {array} array tasks, each {each}.
# Submit: sbatch {path}   (the environment at submission, stores included, goes with the jobs)
#SBATCH --job-name=rnnbench-{what}-{name}
#SBATCH --array=0-{last}
#SBATCH --cpus-per-task={cpus}
{gpus}#SBATCH --time={time}
{partition}#SBATCH --output={logs}/%x-%A_%a.out
#SBATCH --requeue
#SBATCH --signal=B:TERM@120
set -euo pipefail
cd {root}
: "${{MLFLOW_TRACKING_URI:?export the shared tracking server, e.g. http://HOST:5000 (README: Running on a cluster)}}"
{storage_check}# SIGTERM (preemption, the time limit) ends the current run as KILLED with its checkpoint; a requeued or
# resubmitted task resumes it and skips every finished cell.
exec {root}/.venv/bin/rnnbench {what} {source_flag}{extra}
"""


def sbatch_script(what: str, source_flag: str, name: str, array: int, gpus: int, cpus: int, time_limit: str,
                  partition: str | None, root: Path, path: Path, extra: list[str]) -> str:
    """An sbatch array script: `benchmark` shards the matrix by SLURM_ARRAY_TASK_ID; `tune` runs a worker each."""
    import shlex

    each = ("one shard of the matrix (rnnbench reads SLURM_ARRAY_TASK_ID/COUNT)" if what == "benchmark"
            else "one Optuna worker on every study (PostgreSQL storage)")
    storage_check = ('' if what == "benchmark" else ': "${RNNBENCH_OPTUNA_STORAGE:?export the PostgreSQL URL '
                     'of the Optuna storage (README: Running on a cluster)}"\n')
    return SBATCH.format(what=what, source_flag=source_flag, array=array, each=each, path=path, name=name,
                         last=array - 1, cpus=cpus, gpus=f"#SBATCH --gres=gpu:{gpus}\n" if gpus else "",
                         time=time_limit, partition=f"#SBATCH --partition={partition}\n" if partition else "",
                         logs=path.parent / "logs", root=root, storage_check=storage_check,
                         extra="".join(" " + shlex.quote(a) for a in extra))


def slurm(what: str, origin: list[str], name: str, uri: str, storage: str, array: int, gpus: int, cpus: int,
          time_limit: str, partition: str | None, out: str | None, submit: bool, extra: str) -> int:
    """`rnnbench slurm`: check the stores are shared, write the sbatch array script, and submit it if asked."""
    import re
    import shlex
    import shutil
    import subprocess
    from urllib.parse import urlsplit

    if array < 1 or gpus < 0 or cpus < 1:
        raise UserError("--array and --cpus-per-task: need at least 1; --gpus-per-job: 0 or more")
    if not re.fullmatch(r"(\d+-)?\d{1,2}:\d{2}:\d{2}", time_limit):
        raise UserError(f"--time: expected [D-]HH:MM:SS, e.g. 04:00:00 (got {time_limit})")
    if urlsplit(uri).scheme not in ("http", "https", "postgresql", "mysql"):
        raise UserError(f"slurm: the jobs need a shared tracking store, not {uri}: export MLFLOW_TRACKING_URI="
                        "http://HOST:5000 of a server on PostgreSQL (`make server`, README: Running on a cluster)")
    if what == "tune" and not storage.startswith(("postgresql", "mysql")):
        raise UserError("slurm tune: workers on many nodes need an RDB study storage: export "
                        "RNNBENCH_OPTUNA_STORAGE=postgresql://USER:PASSWORD@HOST/optuna")
    root = Path(__file__).resolve().parent.parent
    path = Path(out or root / "slurm" / f"{what}-{name}.sbatch")
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / "logs").mkdir(parents=True, exist_ok=True)
    path.write_text(sbatch_script(what, " ".join(origin[:2]), name, array, gpus, cpus, time_limit, partition, root,
                                  path, shlex.split(extra)))
    print(f"wrote {path}: {array} array tasks · {gpus} GPU(s) each · {time_limit}")
    if not submit:
        print(f"submit it: sbatch {path}")
        return 0
    if shutil.which("sbatch") is None:
        raise UserError("--submit: sbatch not found on this machine; submit the script from a SLURM login node")
    done = subprocess.run(["sbatch", "--parsable", str(path)], capture_output=True, text=True)
    if done.returncode:
        raise UserError(f"--submit: sbatch failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    from suite.stores import redact

    print(f"submitted job {done.stdout.strip()}; watch it in the MLflow UI at {redact(uri)}")
    return 0
