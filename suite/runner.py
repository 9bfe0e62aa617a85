"""One cell as one MLflow run: its tags, data inputs, training, checkpoints, metrics and model (matrices of
cells: suite/matrix.py)."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from suite.config import Cell
from suite.errors import UserError
from suite.stores import auth_failure
from suite.tracking import ROLE, Store


@dataclass
class Outcome:
    cell: Cell
    status: str  # FINISHED, SKIPPED, FAILED, PRUNED
    run_id: str | None = None
    metrics: dict = field(default_factory=dict)
    error: str | None = None
    val_loss: float | None = None  # the last validation's, for tuning


def open_store(tracking_uri: str, experiment: str) -> Store:
    """Connect to the store and the experiment (say which), with torch set up for training."""
    from suite.stores import redact
    from suite.tracking import connect
    from suite.train import init_torch

    init_torch()
    print(f"store {redact(tracking_uri)} · experiment {experiment}", flush=True)
    return connect(tracking_uri, experiment)


def run_cell(store: Store, cell: Cell, profile: str, role: str = "cell", progress: bool = False,
             tags: dict | None = None, callbacks: list | None = None, resume=None, exclusive: bool = False,
             name: str | None = None) -> Outcome:
    """Train, validate each epoch and test one cell, all recorded in one MLflow run.

    `role` and `tags` go on the run (e.g. a trial's parent run); `callbacks` join the Trainer's. A callback
    raising optuna.TrialPruned ends the run as PRUNED (FINISHED in MLflow, tagged). `resume`: a stopped run
    of this cell to carry on from its checkpoint, in the same run. `exclusive`: a matrix cell that other
    workers may start too (see cluster.claim).
    """
    from optuna import TrialPruned

    from suite.train import device_for

    device, run = device_for(cell), None
    name = name or f"{cell.model}-{cell.task}-T{cell.seq_len}-s{cell.seed}"
    try:
        with run_scope(store, cell, profile, device, role, name, tags, resume) as run:
            if exclusive and (taken := _claimed(store, run, cell)):  # another worker has this cell: back off
                run.withdraw()
                return Outcome(cell, "SKIPPED", run.id, error=taken)
            try:
                training = _train(store, run, cell, device, callbacks, progress, resume, exclusive)
            except TrialPruned as pruned:  # the run ends FINISHED, tagged as pruned
                return Outcome(cell, "PRUNED", run.id, {"epochs_trained": pruned.args[1]})
            metrics = _record(store, run, cell, training)
            if exclusive and (taken := _claimed(store, run, cell)) and taken.startswith("finished"):
                run.end_as("KILLED", duplicate=taken)  # checked again before marking done: one FINISHED run a cell
                return Outcome(cell, "SKIPPED", run.id, metrics, error=taken)
            return Outcome(cell, "FINISHED", run.id, metrics, val_loss=training.val_loss)
    except UserError:
        raise
    except Exception as e:  # recorded on the run (FAILED, error tag and error.txt); the matrix goes on
        if auth_failure(e):  # the server refused us: every cell would be
            raise UserError(auth_failure(e)) from None
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return Outcome(cell, "FAILED", run.id if run else None, error=f"{type(e).__name__}: {message}")


def run_scope(store, cell, profile, device, role, name, tags, resume):
    from suite.tracking import cell_run, environment, git_sha

    variant = {"variant": cell.variant} if cell.variant else {}
    return cell_run(store, name, {
        ROLE: role, "model": cell.model, "task": cell.task, "seq_len": str(cell.seq_len), **variant,
        "init": getattr(cell.model_cfg, "init", "torch"),
        "seed": str(cell.seed), "profile": profile, "config_hash": cell.config_hash,
        "code_fingerprint": cell.code_fingerprint, "git_sha": git_sha(), "device": device, **environment(),
        **(tags or {})}, resume)


def _claimed(store, run, cell) -> str | None:
    from suite.cluster import claim

    return claim(store.client, store.experiment_id, run.id, cell.config_hash, cell.code_fingerprint)


def _train(store, run, cell, device, callbacks, progress, resume, exclusive):
    """Fit the cell, logging each epoch (and checkpoints of a matrix cell) to the run."""
    import tempfile

    from optuna import TrialPruned

    from suite.callbacks import Checkpointer, MlflowEpochMetrics
    from suite.tracking import flatten
    from suite.train import Training, precision_for

    training = Training(cell, device)
    client, task = store.client, training.task
    if resume is None:
        resolved = cell.resolved()
        resolved["model"]["hidden_size"] = training.module.net.head.in_features  # solved from param_budget
        client.set_tag(run.id, "data_source", task.describe()["data_source"])
        client.set_tag(run.id, "test_set_sha", training.test_set_sha)  # the same on every device
        client.set_tag(run.id, "precision", precision_for(cell, device))
        client.log_batch(run.id, params=[_param(k, v) for k, v in (
            flatten(resolved) | {f"task.{k}": str(v) for k, v in task.describe().items()}).items()])
        client.log_dict(run.id, resolved, "config.yaml")
        _log_inputs(client, run.id, _datasets(cell, task, training))
    extra = [MlflowEpochMetrics(client, run.id), *(callbacks or [])]
    if exclusive and cell.train.checkpoint_minutes:
        extra.append(Checkpointer(client, run.id, cell.train.checkpoint_minutes, training.train.generator))
    with tempfile.TemporaryDirectory(prefix="rnnbench-") as scratch, system_metrics(store, run, cell, resume):
        ckpt = client.download_artifacts(run.id, "checkpoint/last.ckpt", scratch) if resume is not None else None
        try:
            training.fit(extra, progress, ckpt)
        except TrialPruned:
            epochs = training.speed.epochs_started  # the pruned epoch was trained and validated
            client.set_tag(run.id, "optuna_state", "PRUNED")
            client.set_tag(run.id, "pruned_at_epoch", str(epochs))
            client.log_metric(run.id, "epochs_trained", epochs)
            raise TrialPruned(f"pruned after epoch {epochs}", epochs) from None
    return training


@contextlib.contextmanager
def system_metrics(store, run, cell, resume):
    """MLflow's own system metrics (system/cpu_utilization_percentage, memory, GPU) while the cell trains, every
    10 s: cheap enough not to show in samples/s (`rnnbench speed --system-metrics` measures it)."""
    if not cell.train.system_metrics:
        yield
        return
    import logging

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
        except Exception:  # its last write lost (a locked SQLite store on Ctrl-C): never the run's fate
            pass


def _record(store, run, cell, training) -> dict:
    """Test metrics and the diagnostics the backbone offers, onto the run."""
    from suite.diagnostics import record_attention, record_gradflow
    from suite.logged_model import log_model
    from suite.tracking import log_metrics

    metrics = training.evaluate()
    net = training.module.net
    if training.initial is not None:
        metrics |= record_gradflow(store.client, run.id, training.module, training.initial, training.task,
                                   training.test, cell.label)
    record_attention(store.client, run.id, net.backbone, training.test, cell.label, training.task)
    log_model(store.client, run.id, net, next(iter(training.test))[0])
    log_metrics(store.client, run.id, metrics)
    return metrics


def _datasets(cell, task, training) -> list:
    """The run's data as MLflow dataset inputs (the runs table's Dataset column): name, digest and source."""
    import json

    from mlflow.entities import Dataset, DatasetInput, InputTag

    facts = task.describe()
    name = f"{cell.task} T={cell.seq_len} (generated)" if facts["data_source"] == "synthetic" else facts["data_source"]
    source = json.dumps({"task": cell.task, "module": type(task).__module__, **{k: str(v) for k, v in facts.items()}})
    return [DatasetInput(Dataset(name=name, digest=digest, source_type="code", source=source),
                         tags=[InputTag("mlflow.data.context", context)])
            for context, digest in (("training", cell.config_hash[:8]), ("test", training.test_set_sha[:8]))]


def _log_inputs(client, run_id: str, datasets: list):
    """MLflow gets or creates each dataset; two cells of one task starting together (packed jobs, shards) race
    there, and the loser hits the store's unique constraint: the dataset exists by then, so try again."""
    import time

    from mlflow.exceptions import MlflowException

    for attempt in range(4):
        try:
            return client.log_inputs(run_id, datasets=datasets)
        except MlflowException as e:
            if "unique" not in str(e).lower() or attempt == 3:
                raise
            time.sleep(0.2 * (attempt + 1))


def _param(key, value):
    from mlflow.entities import Param

    return Param(key, value)
