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
from suite.patience import patiently
from suite.roles import TAG, Role
from suite.stores import every

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
    for run in every(client.search_runs, experiment_ids, "attributes.status = 'RUNNING'"):
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


def shard(cells: list, spec: tuple[int, int] | None, together=None) -> list:
    """Shard i of N: every N-th cell from the i-th, so heavy tasks spread over the shards; with `together` (a cell
    -> key), every N-th group of cells of one key, so one shard runs a model's recipe search and its seeds."""
    if spec is None:
        return cells
    if together is None:
        return cells[spec[0]::spec[1]]
    keys = list(dict.fromkeys(map(together, cells)))[spec[0]::spec[1]]
    return [c for c in cells if together(c) in set(keys)]


def claim(store, run_id: str, config_hash: str, fingerprint: str) -> str | None:
    """After starting `run` for a cell: None if it is ours, else why another worker has it.

    Two workers may start the same cell at once (overlapping shards, a requeue); the run started
    first (then the smaller id) keeps it, the other backs off. Finished runs always win. Runs of the same
    settings with other code (another code_fingerprint) are another cell. Only the tags that decide it are read
    (suite/lookup.py), however many runs the settings have had.
    """
    from suite.lookup import briefs

    keys = (TAG, "code_fingerprint", WORKER, HEARTBEAT)
    others = patiently(store.client, briefs, store.client, store.uri, [store.experiment_id], keys,
                       ("RUNNING", "FINISHED"), ("config_hash", config_hash))
    mine = next((b for b in others if b.id == run_id), None)
    me = (mine.start if mine else store.client.get_run(run_id).info.start_time, run_id)
    for other in others:
        if other.id == run_id or other.tags.get(TAG) == Role.TRIAL or \
                other.tags.get("code_fingerprint", "") != fingerprint:  # a trial, or other code: no cell of ours
            continue
        if other.status == "FINISHED":
            return f"finished meanwhile in run {other.id}"
        if (other.start, other.id) < me and stale_from(other.tags, other.start) is None:
            return f"running in run {other.id} ({other.tags.get(WORKER, '?')})"
    return None
