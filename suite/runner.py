"""One cell as one MLflow run: its tags, data inputs, training, checkpoints, metrics and model (matrices of
cells: suite/matrix.py)."""
from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from dataclasses import dataclass, field
from typing import Callable

from suite.config import Cell
from suite.errors import Fault, UserError, disk_fault, one_line, store_lost
from suite.provenance import environment, git_sha
from suite.roles import TAG, Role
from suite.stores import auth_failure, first_wins, redact
from suite.tracking import Run, RunStopped, Store, connect, log_metrics, open_run

# Lightning, and what trains through it, is imported when a cell trains: a benchmark whose cells have all finished
# never loads it (~6 s of a 12 s start on 2 cores, measured with cProfile on the smoke profile).


@dataclass
class Outcome:
    cell: Cell
    status: str  # FINISHED, FAILED, or SKIPPED: finished already (its run), or left to another worker
    run_id: str | None = None
    metrics: dict = field(default_factory=dict)
    error: str | None = None
    val_loss: float | None = None  # the last validation's, for tuning
    tags: dict = field(default_factory=dict)  # the extra tags its run was given (e.g. tuned, study)


@dataclass(frozen=True)
class RunOptions:
    """How a cell's run is made, beyond the cell itself."""

    role: Role = Role.CELL
    tags: dict = field(default_factory=dict)  # extra tags on the run (e.g. a trial's parent run)
    callbacks: Callable[[Run], list] | None = None  # the run -> more Trainer callbacks (e.g. a trial's pruner)
    resume: object = None  # a stopped run of this cell to carry on from its checkpoint, in the same run
    exclusive: bool = False  # a matrix cell other workers may start too (see cluster.claim)
    progress: bool = False  # Lightning's progress bar below the matrix's
    name: str | None = None  # the run's name (default <model>-<task>-T<len>-s<seed>)
    tested: bool = True  # False: validated only, no test set, no logged model (a recipe search's run)
    keep_final: bool = False  # leave the trained state as checkpoint/final.ckpt, for a run to carry on from
    warm_start: str | None = None  # a run whose checkpoint/final.ckpt this one carries on from (its epochs next)


def open_store(tracking_uri: str, experiment: str) -> Store:
    """Connect to the store and the experiment (say which), with torch set up for training."""
    from suite.train import init_torch

    init_torch()
    print(f"store {redact(tracking_uri)} · experiment {experiment}", flush=True)
    return connect(tracking_uri, experiment)


def run_cell(store: Store, cell: Cell, profile: str, options: RunOptions = RunOptions()) -> Outcome:
    """Train, validate each epoch and test one cell, all recorded in one MLflow run.

    A callback raising RunStopped (tracking.py) ends the run FINISHED and goes on up: the caller asked for it
    (a tuning trial its pruner stopped).
    """
    from suite.train import Training, device_for

    o, device, run = options, device_for(cell), None
    name = o.name or f"{cell.model}-{cell.task}-T{cell.seq_len}-s{cell.seed}"
    tags = {TAG: o.role, **cell.tags, "profile": profile, "git_sha": git_sha(), "device": device, **environment(),
            **o.tags}
    try:
        with open_run(store, name, tags, o.resume) as run:
            if o.exclusive and (taken := _claimed(store, run, cell)):  # another worker has this cell: back off
                run.withdraw()
                return Outcome(cell, "SKIPPED", run.id, error=taken, tags=o.tags)
            training = Training(cell, device)
            if o.resume is None:
                _describe_run(store.client, run.id, cell, training, device)
            _fit(store, run, training, o)
            metrics = _record(store, run, cell, training) if o.tested else _measured(store, run, training)
            if o.exclusive and (taken := _claimed(store, run, cell)) and taken.startswith("finished"):
                run.end_as("KILLED", duplicate=taken)  # checked again before marking done: one FINISHED run a cell
                return Outcome(cell, "SKIPPED", run.id, metrics, error=taken, tags=o.tags)
            return Outcome(cell, "FINISHED", run.id, metrics, val_loss=training.val_loss, tags=o.tags)
    except RunStopped:
        raise
    except Exception as e:  # recorded on the run (FAILED, error tag and error.txt); the matrix goes on
        if lost := store_lost(e):  # the tracking database gone past the patience: every cell would fail, stop here
            raise Fault(f"tracking database {lost.store} lost during {cell.label} ({lost.cause}) and not back after "
                        f"{lost.waited:.0f} s of retries{_left(store, run)}; finished cells are kept: rerun the same "
                        "command when it is back to finish the rest") from None
        if isinstance(e, UserError):
            raise
        if auth_failure(e):  # the server refused us: every cell would be
            raise UserError(auth_failure(e)) from None
        if fault := disk_fault(e):  # a full or read-only disk: every cell would be, so the matrix stops here
            what, path = fault
            raise Fault(f"{what} writing {path or f'the tracking store {redact(store.uri)}'} during {cell.label}: "
                        f"free space (or pick a writable folder) and rerun; finished cells are kept{_left(store, run)}"
                        ) from None
        return Outcome(cell, "FAILED", run.id if run else None, error=one_line(e), tags=o.tags)


def _left(store, run) -> str:
    """What became of the cell's run after a fault: FAILED, or still RUNNING where the store's own disk is full or
    the store is gone (the next benchmark's stale-run check marks it KILLED)."""
    if run is None:
        return ""
    try:
        status = store.client.get_run(run.id).info.status
    except Exception:  # the store is what failed: the run could not be closed
        status = "RUNNING"
    return f" (run {run.id} is {status}" + (": the next benchmark marks it KILLED)" if status == "RUNNING" else ")")


def _claimed(store, run, cell) -> str | None:
    from suite.cluster import claim

    return claim(store, run.id, cell.config_hash, cell.code_fingerprint)


def _describe_run(client, run_id: str, cell: Cell, training, device: str):
    """What a new run records once: its data and test set, precision, resolved settings and dataset inputs."""
    from mlflow.entities import Param

    from suite.train import precision_for

    task = training.task
    resolved = cell.resolved()
    resolved["model"]["hidden_size"] = training.module.net.head.in_features  # solved from param_budget
    facts = {"data_source": task.data_source(), **task.describe()}  # data_source whatever describe() says
    client.set_tag(run_id, "data_source", facts["data_source"])
    client.set_tag(run_id, "test_set_sha", training.test_set_sha)  # the same on every device
    client.set_tag(run_id, "precision", precision_for(cell, device))
    client.log_batch(run_id, params=[Param(k, v) for k, v in (
        _flat(resolved) | {f"task.{k}": str(v) for k, v in facts.items()}).items()])
    client.log_dict(run_id, resolved, "config.yaml")
    _log_inputs(client, run_id, _datasets(cell, facts, training))


def _log_inputs(client, run_id: str, datasets: list):
    """MLflow gets or creates each dataset; two cells of one task starting together (packed jobs, shards) race
    there and the loser hits the store's unique constraint: the dataset exists by then, so another try logs ours
    (another job's dataset never logs our run's inputs, so nothing is done until ours goes in)."""
    first_wins(lambda: client.log_inputs(run_id, datasets=datasets), lambda: False)


def _fit(store: Store, run: Run, training, o: RunOptions):
    """Fit the cell, logging each epoch (and checkpoints of a matrix cell) to the run."""
    from suite.callbacks import Checkpointer, MlflowEpochMetrics

    client, cell = store.client, training.cell
    extra = [MlflowEpochMetrics(client, run.id), *(o.callbacks(run) if o.callbacks else [])]
    if (o.exclusive and cell.train.checkpoint_minutes) or o.keep_final or o.warm_start:  # (its stream's state too)
        extra.append(Checkpointer(client, run.id, cell.train.checkpoint_minutes if o.exclusive else None,
                                  training.train_batches.generator))
    with tempfile.TemporaryDirectory(prefix="rnnbench-") as scratch, system_metrics(store, run, cell, o.resume):
        if o.resume is not None:  # its own checkpoint: where it stopped
            ckpt = client.download_artifacts(run.id, "checkpoint/last.ckpt", scratch)
        else:
            ckpt = _final(client, o.warm_start, run.id, scratch) if o.warm_start else None
        training.fit(extra, o.progress, ckpt)
        if o.keep_final:
            training.trainer.save_checkpoint(f"{scratch}/final.ckpt")
            client.log_artifact(run.id, f"{scratch}/final.ckpt", "checkpoint")


def _final(client, source: str, run_id: str, scratch: str) -> str | None:
    """The final checkpoint of run `source` to carry on from, noted on the run (tag `continued_from`); None (the
    run trains from the start, noted so) when that run has none."""
    try:
        path = client.download_artifacts(source, "checkpoint/final.ckpt", scratch)
    except Exception:  # gone, or an older run that kept none
        client.set_tag(run_id, "continued_from", f"none: {source} has no final checkpoint")
        return None
    client.set_tag(run_id, "continued_from", source)
    return path


@contextlib.contextmanager
def system_metrics(store, run, cell, resume):
    """MLflow's own system metrics (system/cpu_utilization_percentage, memory, GPU) while the cell trains, every
    10 s: cheap enough not to show in samples/s (`rnnbench speed --system-metrics` measures it), and a final
    sample when it stops."""
    if not cell.train.system_metrics:
        yield
        return
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    logging.getLogger("mlflow.system_metrics").setLevel(logging.ERROR)  # "started monitoring" on every run
    monitor = SystemMetricsMonitor(run.id, sampling_interval=10, resume_logging=resume is not None,
                                   tracking_uri=store.uri)
    monitor.start()
    try:
        yield
    finally:
        try:
            monitor.finish()
            _final_sample(monitor)
        except Exception:  # its last write lost (a locked SQLite store on Ctrl-C): never the run's fate
            pass


def _final_sample(monitor):
    """The monitor publishes only at the end of each full interval and drops the one it is in when stopped, so
    a run shorter than 10 s had no system metrics at all: that last stretch as one more step (CPU since the
    monitor's last sample, memory now)."""
    for each in monitor.monitors:
        each.clear_metrics()  # the stopped interval's opening sample: psutil's CPU reading is since the one before
    monitor.collect_metrics()
    monitor.publish_metrics(monitor.aggregate_metrics())
    monitor.mlflow_logger.flush()


def _record(store, run, cell, training) -> dict:
    """Test metrics and the diagnostics the backbone offers, onto the run and its logged model."""
    from suite.diagnostics import record_attention, record_gradflow
    from suite.logged_model import log_model

    metrics = training.evaluate()
    store.client.set_tag(run.id, "compute_dtypes", training.dtypes.summary())  # what precision gave, as it ran
    net = training.module.net
    if training.initial is not None:
        metrics |= record_gradflow(store.client, run.id, training.module, training.initial, training.task,
                                   training.test_batches, cell.label)
    record_attention(store.client, run.id, net.backbone, training.test_batches, cell.label, training.task)
    model_id = log_model(store.client, run.id, net, next(iter(training.test_batches))[0])
    log_metrics(store.client, run.id, metrics, model_id=model_id)
    return metrics


def _measured(store, run, training) -> dict:
    """What a validated-only run records at its end (its validation loss is logged each epoch)."""
    metrics = training.measures()
    log_metrics(store.client, run.id, metrics)
    return metrics | ({"val_loss": training.val_loss} if training.val_loss is not None else {})


def _datasets(cell: Cell, facts: dict, training) -> list:
    """The run's data as MLflow dataset inputs (the runs table's Dataset column): name, digest and source."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    name = f"{cell.task} T={cell.seq_len} (generated)" if facts["data_source"] == "synthetic" else facts["data_source"]
    source = json.dumps({"task": cell.task, "module": type(training.task).__module__,
                         **{k: str(v) for k, v in facts.items()}})
    return [DatasetInput(Dataset(name=name, digest=digest, source_type="code", source=source),
                         tags=[InputTag("mlflow.data.context", context)])
            for context, digest in (("training", cell.config_hash[:8]), ("test", training.test_set_sha[:8]))]


def _flat(d: dict, prefix: str = "") -> dict[str, str]:
    """A nested settings dict as MLflow params: model.hidden_size -> "64"."""
    out = {}
    for k, v in d.items():
        out |= _flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": str(v)}
    return out
