"""The MLflow store a command records into: the experiment, the one run lifecycle, finished and stopped cells, plans.

Every MLflow call goes through an explicit client on the store's URI (no global tracking URI). Every run rnnbench
makes is created by `create_run` and lived through `open_run`, which ends it FINISHED, FAILED or KILLED whatever
raises inside; the one run created ahead of its lifecycle is a tuning study's, reserved under the study's lock
(suite/tuning/study.py) and then opened here like any other.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import time
import traceback
from pathlib import Path
from urllib.parse import unquote, urlsplit

from suite.cluster import HEARTBEAT, WORKER, Heartbeat, worker_id
from suite.errors import UserError, one_line
from suite.patience import patiently
from suite.roles import MATRIX, TAG
from suite.stores import check_store, every, first_wins, open_client, redact, writable

PLAN = "rnnbench.plan"  # experiment tags PLAN.<hash>: the matrices benchmarks planned (the report's "missing" cells)
UI_VIEW = "mlflow.experimentKind"  # MLflow 3's UI opens an experiment of this kind in its machine-learning view
DESCRIPTIONS = {"horizon": "Length sweeps: every model at every length of a ladder, and each model's dependency "
                           "horizon (rnnbench horizon).",
                "tune": "Tuning studies: one parent run per model x task study, one nested run per trial "
                        "(rnnbench tune).",
                "gradflow": "Gradient flow: the norm of dL/dh_t at every step, at initialisation and trained.",
                "speed": "Training speed: the suite against a hand-written PyTorch loop (rnnbench speed).",
                "reproduce": "Reproductions: a reference beside ours on the same data and seeds (rnnbench reproduce)."}


@dataclasses.dataclass
class Store:
    """An MLflow store and the experiment a command records into."""

    uri: str
    client: object  # stores.open_client(uri)
    experiment_id: str
    experiment: str


def connect(uri: str, experiment: str) -> Store:
    """The store (checking a server answers, or a local store's folder exists) and the experiment in it."""
    check_store(uri)
    client = open_client(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        folder = Path("mlartifacts").resolve() if urlsplit(uri).scheme == "sqlite" else None
        if folder:
            writable(folder, f"the artifacts of {experiment}")
        artifacts = folder.as_uri() if folder else None
        try:  # another job may create it a moment before us: then it is there, which is all we need
            first_wins(lambda: client.create_experiment(experiment, artifact_location=artifacts),
                       lambda: client.get_experiment_by_name(experiment) is not None)
        except Exception as e:
            raise UserError(f"--experiment: cannot create {experiment} in {redact(uri)} "
                            f"({getattr(e, 'error_code', type(e).__name__)})") from None
        found = client.get_experiment_by_name(experiment)
    elif urlsplit(found.artifact_location).scheme in ("", "file"):  # a local folder: a server's is its own
        writable(Path(unquote(urlsplit(found.artifact_location).path)), f"the artifacts of {experiment}")
    if found.tags.get(UI_VIEW) != "custom_model_development":
        describe(client, found.experiment_id, experiment)
    return Store(uri, client, found.experiment_id, experiment)


def describe(client, experiment_id: str, name: str):
    """The experiment's kind for MLflow's UI (so it shows runs, metrics and charts, not GenAI traces) and its
    description."""
    family = name.removeprefix("rnnbench-").split("-")[0]
    text = DESCRIPTIONS.get(family, f"Benchmark cells of {name}: every model on every task setting and seed "
                                    "(rnnbench benchmark); `rnnbench report` turns them into static pages.")
    for key, value in ((UI_VIEW, "custom_model_development"), ("mlflow.note.content", text)):
        tag_experiment(client, experiment_id, key, value)


def tag_experiment(client, experiment_id: str, key: str, value: str) -> None:
    """Set an experiment tag that jobs starting together may all set: on a server the second insert of a new key
    is refused (a unique-key clash), which is fine when the tag is there; any other refusal is raised."""
    first_wins(lambda: client.set_experiment_tag(experiment_id, key, value),
               lambda: client.get_experiment(experiment_id).tags.get(key) is not None, tries=1)


class RunStopped(Exception):
    """Raised inside a run to end it early but complete (FINISHED): e.g. a tuning trial its pruner stopped."""


class Run:
    """An open run: its id, and the status it will end with unless something raises."""

    def __init__(self, client, run_id: str, resumed: bool = False):
        self.client, self.id, self.resumed = client, run_id, resumed
        self.status, self.withdrawn = "FINISHED", False

    def end_as(self, status: str, **tags):
        """End with `status` (e.g. KILLED for a duplicate), tagging why."""
        for key, value in tags.items():
            self.client.set_tag(self.id, key, value)
        self.status = status

    def withdraw(self):
        """Back off from a cell another worker has: a new run is deleted (it leaves no trace), a resumed one ends
        KILLED as it was."""
        self.withdrawn, self.status = True, "KILLED"


def create_run(store: Store, name: str, tags: dict) -> str:
    """A new RUNNING run, tagged with its worker and a first heartbeat: one lost before its first beat is stale."""
    return store.client.create_run(store.experiment_id, run_name=name, tags={
        **tags, "mlflow.runName": name, WORKER: worker_id(), HEARTBEAT: str(int(time.time()))}).info.run_id


@contextlib.contextmanager
def open_run(store: Store, name: str, tags: dict, resume=None, heartbeat: bool = True):
    """Every run rnnbench makes: created (or `resume`d: a stopped run, or the id of one, carried on) and alive
    while the block runs. Yields a Run.

    Ends FINISHED (or as run.end_as says), also when RunStopped ends it early; on any other error FAILED, with
    the error as a tag and error.txt; on Ctrl-C, SIGTERM or SystemExit (what Lightning turns Ctrl-C into)
    KILLED, and a KeyboardInterrupt goes on up. A withdrawn new run is deleted.
    """
    client = store.client
    if resume is not None:
        run_id = resume if isinstance(resume, str) else resume.info.run_id
        client.update_run(run_id, status="RUNNING")
        if not isinstance(resume, str):
            client.set_tag(run_id, "resumed", str(int(resume.data.tags.get("resumed", "0")) + 1))
    else:
        run_id = create_run(store, name, tags)
    run = Run(client, run_id, resumed=resume is not None)
    beat = Heartbeat(client, run_id, announce=resume is not None) if heartbeat else None
    try:
        yield run
    except RunStopped:
        raise
    except (KeyboardInterrupt, SystemExit):
        run.status = "KILLED"
        raise KeyboardInterrupt from None
    except BaseException as e:
        run.status = "FAILED"
        _record_error(client, run_id, e)
        raise
    finally:
        if beat:
            beat.close()
        client.set_terminated(run_id, run.status)
        if run.withdrawn and not run.resumed:
            client.delete_run(run_id)


def _record_error(client, run_id: str, e: BaseException):
    try:
        client.set_tag(run_id, "error", one_line(e)[:5000])
        client.log_text(run_id, traceback.format_exc(), "error.txt")
    except Exception:  # the store itself may be what failed: the status is still set after this
        pass


def log_metrics(client, run_id: str, metrics: dict, step: int = 0, model_id: str | None = None):
    """Finite metrics in one request (also the logged model's, with its id: what it scored)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, step, model_id=model_id) for k, v in metrics.items()
                                      if v is not None and math.isfinite(v)])


def our_experiments(store: Store) -> list[str]:
    """The ids of every rnnbench experiment in the store (and this command's): stale runs are looked for in all."""
    found = every(store.client.search_experiments, filter_string="name LIKE 'rnnbench%'")
    return list(dict.fromkeys([store.experiment_id, *(e.experiment_id for e in found)]))


def finished_runs(store: Store, hashes: list[str] | None = None) -> dict[tuple[str, str], object]:
    """FINISHED matrix cell runs of the experiment (of the cells with these config hashes) by (config_hash,
    code_fingerprint), the newest when one ran twice; only those are read whole (suite/lookup.py)."""
    return _newest(store, hashes, ("FINISHED",), lambda tags: tags.get(TAG) in MATRIX)


def stopped_runs(store: Store, hashes: list[str] | None = None) -> dict[tuple[str, str], object]:
    """KILLED runs with a checkpoint (preempted, interrupted or stale) by (config_hash, code_fingerprint), the
    newest of each: what a cell resumes from. Runs killed as duplicates are not resumed."""
    return _newest(store, hashes, ("KILLED",), lambda tags: tags.get("checkpoint_epoch") and "duplicate" not in tags)


def _newest(store: Store, hashes, statuses, wanted) -> dict[tuple[str, str], object]:
    from suite.lookup import briefs, whole

    keys = (TAG, "config_hash", "code_fingerprint", "checkpoint_epoch", "duplicate")
    one = ("config_hash", hashes[0]) if hashes and len(hashes) == 1 else None
    found = patiently(store.client, briefs, store.client, store.uri, [store.experiment_id], keys, statuses, one)
    newest = {(b.tags.get("config_hash"), b.tags.get("code_fingerprint", "")): b for b in found if wanted(b.tags)}
    newest = {k: b for k, b in newest.items() if k[0] and (hashes is None or k[0] in hashes)}
    runs = whole(store.client, list(newest.values()))
    return {k: runs[b.id] for k, b in newest.items()}


def log_plan(store: Store, *matrices: list) -> None:
    """Add matrices of cells (the experiment's, and the one this command chose) to the experiment's plan:
    the report's missing cells are the planned ones without a run, whatever today's profiles say.
    One tag per matrix, named by its content, so jobs planning at once never overwrite each other's."""
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
