"""The MLflow store: where it is, the experiment, run lifecycles, finished cells and run facts.

Every MLflow call goes through an explicit MlflowClient on the store's URI (no global tracking URI), and
every run is opened by one of the context managers here, which end it FINISHED, FAILED or KILLED
whatever raises inside.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import subprocess
import time
import traceback
from pathlib import Path
from urllib.parse import urlsplit

from suite.errors import UserError
from suite.stores import check_store, open_client, redact

ROLE = "rnnbench_role"  # every run says what it is: cell, trial, sweep, sweep_cell, study, speed, gradflow
PLAN = "rnnbench.plan"  # experiment tags PLAN.<hash>: the matrices benchmarks planned (the report's "missing" cells)


@dataclasses.dataclass
class Store:
    """An MLflow store and the experiment a command records into."""

    uri: str
    client: object  # stores.open_client(uri)
    experiment_id: str
    experiment: str


def connect(uri: str, experiment: str) -> Store:
    """The store (checking a server answers, or a local store's folder exists) and the experiment in it."""
    from mlflow.exceptions import MlflowException

    check_store(uri)
    scheme = urlsplit(uri).scheme
    client = open_client(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        artifacts = Path("mlartifacts").resolve().as_uri() if scheme == "sqlite" else None
        try:
            client.create_experiment(experiment, artifact_location=artifacts)
        except MlflowException as e:  # another job created it a moment ago
            if client.get_experiment_by_name(experiment) is None:
                raise UserError(f"--experiment: cannot create {experiment} in {redact(uri)} ({e.error_code})") from None
        found = client.get_experiment_by_name(experiment)
    if found.tags.get(KIND) != "custom_model_development":
        describe(client, found.experiment_id, experiment)
    return Store(uri, client, found.experiment_id, experiment)


KIND = "mlflow.experimentKind"  # MLflow 3's UI opens an experiment of this kind in its machine-learning view
DESCRIPTIONS = {"horizon": "Length sweeps: every model at every length of a ladder, and each model's dependency "
                           "horizon (rnnbench horizon).",
                "tune": "Tuning studies: one parent run a model x task study, one nested run a trial (rnnbench tune).",
                "gradflow": "Gradient flow: the norm of dL/dh_t at every step, at initialisation and trained.",
                "speed": "Training speed: the suite against a hand-written PyTorch loop (rnnbench speed).",
                "reproduce": "Reproductions: a reference beside ours on the same data and seeds (rnnbench reproduce)."}


def describe(client, experiment_id: str, name: str):
    """The experiment's kind (so the UI shows runs, metrics and charts, not GenAI traces) and its description."""
    kind = name.removeprefix("rnnbench-").split("-")[0]
    text = DESCRIPTIONS.get(kind, f"Benchmark cells of {name}: every model on every task setting and seed "
                                  "(rnnbench benchmark); `rnnbench report` turns them into static pages.")
    for key, value in ((KIND, "custom_model_development"), ("mlflow.note.content", text)):
        tag_experiment(client, experiment_id, key, value)


def tag_experiment(client, experiment_id: str, key: str, value: str) -> None:
    """Set an experiment tag that jobs starting together may all set: on a server the second insert of a new key
    is refused (a unique-key clash), which is fine when the tag is there; any other refusal is raised."""
    try:
        client.set_experiment_tag(experiment_id, key, value)
    except Exception:
        if client.get_experiment(experiment_id).tags.get(key) is None:
            raise


class Run:
    """An open run: its id, and the status it will end with unless something raises."""

    def __init__(self, client, run_id: str, resumed: bool = False):
        self.client, self.id, self.resumed, self.status = client, run_id, resumed, "FINISHED"

    def end_as(self, status: str, **tags):
        """End with `status` (e.g. KILLED for a duplicate), tagging why."""
        for key, value in tags.items():
            self.client.set_tag(self.id, key, value)
        self.status = status

    def withdraw(self):
        """Back off from a cell another worker has: a new run leaves no trace, a resumed one stays KILLED."""
        self.status = "KILLED" if self.resumed else "DELETED"


@contextlib.contextmanager
def cell_run(store: Store, name: str, tags: dict, resume=None, heartbeat: bool = True):
    """A run of one cell or trial, created (or `resume`d: a stopped run carried on), alive while it runs.

    Ends FINISHED (or as run.end_as says); on an error FAILED, with the error as a tag and error.txt;
    on Ctrl-C, SIGTERM or SystemExit KILLED, and a KeyboardInterrupt goes on up.
    """
    from suite.cluster import HEARTBEAT, WORKER, Heartbeat, worker_id

    client = store.client
    if resume is not None:
        run_id = resume.info.run_id
        client.update_run(run_id, status="RUNNING")
        client.set_tag(run_id, "resumed", str(int(resume.data.tags.get("resumed", "0")) + 1))
    else:  # created alive: worker and heartbeat tags from the start, so a run lost before its first beat is stale
        run_id = client.create_run(store.experiment_id, run_name=name, tags={
            **tags, "mlflow.runName": name, WORKER: worker_id(), HEARTBEAT: str(int(time.time()))}).info.run_id
    run = Run(client, run_id, resumed=resume is not None)
    beat = Heartbeat(client, run_id, announce=resume is not None) if heartbeat else None
    try:
        yield run
    except (KeyboardInterrupt, SystemExit):  # Lightning turns Ctrl-C into SystemExit(1)
        run.status = "KILLED"
        raise KeyboardInterrupt from None
    except BaseException as e:
        run.status = "FAILED"
        _record_error(client, run_id, e)
        raise
    finally:
        if beat:
            beat.close()
        if run.status == "DELETED":
            client.set_terminated(run_id, "KILLED")
            client.delete_run(run_id)
        else:
            client.set_terminated(run_id, run.status)


@contextlib.contextmanager
def parent_run(store: Store, name: str, tags: dict, reopen: str | None = None, heartbeat: bool = True):
    """A run that holds others (a sweep, a study) or a command's own result (gradflow, speed): yields its id.

    `reopen` carries on an existing run (a study topped up). Ends FINISHED, FAILED or KILLED like cell_run.
    """
    from suite.cluster import Heartbeat

    client = store.client
    if reopen:
        client.update_run(reopen, status="RUNNING")
        run_id = reopen
    else:
        run_id = client.create_run(store.experiment_id, run_name=name,
                                   tags={**tags, "mlflow.runName": name}).info.run_id
    beat = Heartbeat(client, run_id) if heartbeat else None
    status = "FINISHED"
    try:
        yield run_id
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except BaseException as e:
        status = "FAILED"
        _record_error(client, run_id, e)
        raise
    finally:
        if beat:
            beat.close()
        client.set_terminated(run_id, status)


def _record_error(client, run_id: str, e: BaseException):
    message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    try:
        client.set_tag(run_id, "error", f"{type(e).__name__}: {message}"[:5000])
        client.log_text(run_id, traceback.format_exc(), "error.txt")
    except Exception:  # the store itself may be what failed: the status is still set below
        pass


def log_metrics(client, run_id: str, metrics: dict, step: int = 0):
    """Finite metrics in one request."""
    import math

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()
                                      if v is not None and math.isfinite(v)])


def our_experiments(store: Store) -> list[str]:
    """The ids of every rnnbench experiment in the store (and this command's): stale runs are looked for in all."""
    found = store.client.search_experiments(filter_string="name LIKE 'rnnbench%'", max_results=1000)
    return list(dict.fromkeys([store.experiment_id, *(e.experiment_id for e in found)]))


def finished_runs(store: Store, hashes: list[str] | None = None) -> dict[tuple[str, str], object]:
    """FINISHED cell runs of the experiment by (config_hash, code_fingerprint), the newest when one ran twice."""
    runs = store.client.search_runs([store.experiment_id], "attributes.status = 'FINISHED'", max_results=50_000,
                                    order_by=["attributes.start_time ASC"])
    cells = ("cell", "sweep_cell", "repro_cell")  # not trials: a trial's settings may equal a tuned cell's
    found = {(r.data.tags.get("config_hash"), r.data.tags.get("code_fingerprint", "")): r
             for r in runs if r.data.tags.get(ROLE) in cells}
    return {k: r for k, r in found.items() if k[0] and (hashes is None or k[0] in hashes)}


def result_of(found: dict, cell) -> tuple[object | None, object | None]:
    """(the finished run of the cell with today's code, else None; the newest one with other code, else None)."""
    current = found.get((cell.config_hash, cell.code_fingerprint))
    older = [r for (h, fp), r in found.items() if h == cell.config_hash and fp != cell.code_fingerprint]
    return current, max(older, key=lambda r: r.info.start_time) if older else None


def log_plan(store: Store, *matrices: list) -> None:
    """Add matrices of cells (the experiment's, and the one this command chose) to the experiment's plan:
    the report's missing cells are the planned ones without a run, whatever today's profiles say.
    One tag a matrix, named by its content, so jobs planning at once never overwrite each other's."""
    tags = store.client.get_experiment(store.experiment_id).tags
    for block in map(_plan_block, matrices):
        text = json.dumps(block, separators=(",", ":"))
        key = f"{PLAN}.{hashlib.sha1(text.encode()).hexdigest()[:12]}"
        if key not in tags:
            tag_experiment(store.client, store.experiment_id, key, text)


def plan_blocks(tags: dict) -> list[dict]:
    """The matrices an experiment's tags plan: one `rnnbench.plan.<hash>` tag each (older stores: one list)."""
    blocks = json.loads(tags.get(PLAN, "[]"))
    return blocks + [json.loads(v) for k, v in sorted(tags.items()) if k.startswith(PLAN + ".")]


def _plan_block(cells: list) -> dict:
    """A matrix as the product it is: models x seeds x settings (task, T, variant)."""
    return {"models": list(dict.fromkeys(c.model for c in cells)), "seeds": sorted({c.seed for c in cells}),
            "settings": [list(s) for s in dict.fromkeys((c.task, c.seq_len, c.variant) for c in cells)]}


def git_sha() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + "-dirty" if dirty else sha) if sha else "unknown"


def environment() -> dict[str, str]:
    """Facts about the machine and libraries, recorded as tags on every run."""
    import torch

    env = {"torch_version": torch.__version__, "python_version": platform.python_version(), "cpu": _cpu_model(),
           "cpu_count": str(os.cpu_count()), "torch_threads": str(torch.get_num_threads()),
           "jobs": os.environ.get("RNNBENCH_JOBS", "1")}  # cells trained side by side on this machine
    if torch.cuda.is_available():
        env |= {"gpu": torch.cuda.get_device_name(), "cuda_version": str(torch.version.cuda),
                "cudnn_version": str(torch.backends.cudnn.version())}
    return env


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = str(v)
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
