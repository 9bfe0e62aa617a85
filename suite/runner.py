"""Cells as MLflow runs: one cell, a matrix of them (skipped, claimed, resumed), and the run/benchmark commands."""
from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field

from suite.config import Cell
from suite.errors import UserError
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
        client.log_inputs(run.id, datasets=_datasets(cell, task, training))
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
        monitor.finish()


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


def _param(key, value):
    from mlflow.entities import Param

    return Param(key, value)


def run_matrix(store: Store, cells: list[Cell], profile: str, force: bool = False, role: str = "cell",
               progress: bool | None = None, tags: dict[str, dict] | None = None,
               reuse_stale: bool = False) -> list[Outcome]:
    """Every cell in turn; finished cells (same config_hash and code_fingerprint) are skipped unless forced.

    A cell finished with other code (the model's, the task's or the training core's files changed since) runs
    again, unless `reuse_stale` keeps the old result knowingly.

    Safe with other workers on the same store (overlapping shards, requeued jobs): stale runs are
    marked KILLED first, the store is checked again before each cell, a cell another live worker
    is training is left to it, and a stopped run with a checkpoint is resumed rather than restarted.
    `tags` maps a cell's config_hash to extra tags for its run (e.g. the study a tuned cell came from).
    """
    from tqdm.auto import tqdm

    from suite.cluster import reap_stale_runs
    from suite.tracking import finished_runs, our_experiments, result_of

    tty = sys.stderr.isatty() if progress is None else progress
    reap_stale_runs(store.client, our_experiments(store))
    done = {} if force else finished_runs(store)
    outcomes, started = [], time.perf_counter()
    with tqdm(total=len(cells), desc="matrix", unit="cell", disable=not tty, dynamic_ncols=True) as bar:
        for i, cell in enumerate(cells, 1):
            found, older = (None, None) if force else result_of(done, cell)
            if found is None and not force:  # another worker may have finished it meanwhile
                found, older = result_of(_guarded(store, cell, lambda c=cell: finished_runs(store, [c.config_hash]),
                                                  outcomes), cell)
            if found is None and older is not None and reuse_stale:
                found, older = older, None
            if found is not None:
                outcome = Outcome(cell, "SKIPPED", found.info.run_id, dict(found.data.metrics))
                note = ("already finished, skipped (--force reruns)" if found.data.tags.get("code_fingerprint") ==
                        cell.code_fingerprint else "kept from older code (--reuse-stale)")
            else:
                bar.set_postfix_str(cell.label)
                resume = None if force else _guarded(store, cell, lambda c=cell: resumable(store, c), outcomes)
                outcome = _guarded(store, cell, lambda c=cell, r=resume: run_cell(
                    store, c, profile, role, tty, (tags or {}).get(c.config_hash), resume=r, exclusive=not force),
                    outcomes)
                note = f"left to another worker: {outcome.error}" if outcome.status == "SKIPPED" else _headline(outcome)
                if resume is not None:
                    note += f" (resumed run {resume.info.run_id} from epoch {resume.data.tags['checkpoint_epoch']})"
                if older is not None:
                    note += f" (its code changed since run {older.info.run_id}: trained again)"
            outcomes.append(outcome)
            bar.update()
            elapsed = time.perf_counter() - started
            trained = sum(o.status != "SKIPPED" for o in outcomes)
            eta = elapsed / max(trained, 1) * sum(1 for c in cells[i:] if result_of(done, c)[0] is None)
            line = f"[{i}/{len(cells)}] {cell.label}: {note}  (elapsed {_clock(elapsed)}, eta {_clock(eta)})"
            bar.write(line) if tty else print(line, flush=True)
    return outcomes


def resumable(store: Store, cell: Cell):
    """The newest KILLED run of the cell, same code, with a checkpoint (a preempted, interrupted or stale one)."""
    runs = store.client.search_runs([store.experiment_id], f"tags.config_hash = '{cell.config_hash}' and "
                                    f"tags.code_fingerprint = '{cell.code_fingerprint}' and "
                                    "attributes.status = 'KILLED' and tags.checkpoint_epoch != ''",
                                    max_results=1, order_by=["attributes.start_time DESC"])
    runs = [r for r in runs if "duplicate" not in r.data.tags]
    return runs[0] if runs else None


def _guarded(store: Store, cell: Cell, run, outcomes: list[Outcome]):
    """run(); if it fails because the tracking store is gone, stop the matrix with one clear line."""
    from suite.stores import reachable, redact

    try:
        return run()
    except (UserError, KeyboardInterrupt):
        raise
    except Exception as e:
        if reachable(store.uri):
            raise
        kept = sum(o.status in ("FINISHED", "SKIPPED") for o in outcomes)
        raise UserError(f"tracking store {redact(store.uri)} lost during {cell.label} ({type(e).__name__}, after "
                        f"MLflow's retries); {kept} finished cells are kept: rerun the same command when it is "
                        "back to finish the rest") from None


def _headline(o: Outcome) -> str:
    if o.status == "FAILED":
        return f"FAILED ({o.error})"
    m = o.metrics
    score = f"test_acc {m['test_acc']:.3f}" if "test_acc" in m else f"test_mse {m.get('test_mse', float('nan')):.4f}"
    return f"{score}, test_loss {m['test_loss']:.4f}, {m['train_samples_per_s']:.0f} samples/s"


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"
