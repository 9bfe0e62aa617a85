"""Run one cell (a model on a task at one length and seed) as one MLflow run, and a matrix of them."""
from __future__ import annotations

import logging
import math
import os
import resource
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field

from suite.config import Cell
from suite.errors import UserError


def init_torch():
    """Process-wide torch settings; call before the first parallel op (threads inherit it then)."""
    import torch

    # Denormals slow the backward pass of long sequences 3-5x on CPU; flushing them costs nothing.
    torch.set_flush_denormal(True)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if os.environ.get("RNNBENCH_THREADS"):  # set for parallel tuning workers: the cores split between them
        torch.set_num_threads(int(os.environ["RNNBENCH_THREADS"]))
    import lightning.pytorch  # noqa: F401  (it sets its loggers to INFO on import: quieten them after)

    for name in ("lightning.pytorch", "lightning.fabric", "lightning_utilities", "mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*(does not have many workers|LeafSpec|treespec).*")
    warnings.filterwarnings("ignore", message=".*(smaller than the logging interval|but have no `val_dataloader`).*")


def device_for(cell: Cell) -> str:
    import torch

    if cell.train.device == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device: cuda asked for but no CUDA device is visible; use auto or cpu")
    return "cuda" if cell.train.device == "auto" and torch.cuda.is_available() else cell.train.device.replace("auto", "cpu")


def precision_for(cell: Cell, device: str) -> str:
    if cell.train.precision != "auto":
        return cell.train.precision
    return "bf16-mixed" if device == "cuda" else "32-true"


def build(cell: Cell, device: str):
    """The task, its batches and the LightningModule of a cell: (task, train, val, test, module).

    `train` yields groups of steps_per_call batches; `train.batches` is the plain batch iterable.
    """
    import lightning.pytorch as pl

    from suite.data import Batches, Groups, Stream
    from suite.models import resolve
    from suite.module import SeqModule
    from tasks import TASKS
    from tasks.base import SyntheticTask

    task = TASKS[cell.task](cell.task_cfg)
    tc = cell.train
    pl.seed_everything(cell.seed, verbose=False)
    splits = task.splits(tc.n_val, tc.n_test, device)
    if isinstance(task, SyntheticTask):
        train = Stream(task, tc.batch_size, tc.steps_per_epoch or 100, cell.seed, device)
    else:
        train = Batches(*splits["train"], tc.batch_size, shuffle_seed=cell.seed, limit=tc.steps_per_epoch)
    train = Groups(train, tc.steps_per_call)
    val, test = (Batches(*splits[s], tc.eval_batch_size) for s in ("val", "test"))
    model_cfg = resolve(cell.model, cell.model_cfg, task.input_size, task.n_outputs)
    module = SeqModule(cell.model, model_cfg, task, tc)
    return task, train, val, test, module


def trainer_for(cell: Cell, device: str, callbacks: list, progress: bool, **overrides):
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import TQDMProgressBar

    if progress:  # below the matrix bar, which holds the first line
        callbacks = [*callbacks, TQDMProgressBar(process_position=1, leave=False)]
    return pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu", devices=1, precision=precision_for(cell, device),
        max_epochs=cell.train.epochs, callbacks=callbacks, profiler=_no_profiler(),
        logger=False, enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=progress,
        num_sanity_val_steps=0, log_every_n_steps=10**9, **overrides,
        **({"max_time": {"seconds": round(cell.train.max_minutes * 60)}} if cell.train.max_minutes else {}))


def _no_profiler():
    """Lightning's default profiler wraps ~45 spots a step in a generator context (~0.1 ms a step)."""
    import contextlib

    from lightning.pytorch.profilers import PassThroughProfiler

    class NoProfiler(PassThroughProfiler):
        def profile(self, action_name):
            return contextlib.nullcontext()

    return NoProfiler()


@dataclass
class Outcome:
    cell: Cell
    status: str  # FINISHED, SKIPPED, FAILED, PRUNED
    run_id: str | None = None
    metrics: dict = field(default_factory=dict)
    error: str | None = None
    val_loss: float | None = None  # the last validation's, for tuning


def run_cell(cell: Cell, experiment_id: str, profile: str, progress: bool = False, tags: dict | None = None,
             callbacks: list | None = None, resume=None, exclusive: bool = False) -> Outcome:
    """Train, validate each epoch and test one cell, all recorded in one MLflow run.

    `tags` go on the run (e.g. mlflow.parentRunId for a tuning trial); `callbacks` join the Trainer's.
    A callback raising optuna.TrialPruned ends the run as PRUNED (FINISHED in MLflow, tagged).
    `resume`: a stopped run of this cell to carry on from its checkpoint, in the same run.
    `exclusive`: the cell is a matrix cell that other workers may start too; see cluster.claim.
    """
    import shutil
    import tempfile

    import mlflow
    import torch
    from mlflow import MlflowClient
    from optuna import TrialPruned

    from suite.callbacks import Checkpointer, MlflowEpochMetrics, SolveWatch, TrainSpeed
    from suite.cluster import Heartbeat, claim, worker_id
    from suite.tracking import environment, flatten, git_sha

    device, client = device_for(cell), MlflowClient()
    if resume is not None:
        run = mlflow.start_run(run_id=resume.info.run_id)  # back to RUNNING
        mlflow.set_tag("resumed", str(int(resume.data.tags.get("resumed", "0")) + 1))
    else:
        run = mlflow.start_run(experiment_id=experiment_id, run_name=f"{cell.model}-{cell.task}-T{cell.seq_len}-s{cell.seed}",
                               tags={"model": cell.model, "task": cell.task, "seq_len": str(cell.seq_len),
                                     "seed": str(cell.seed), "profile": profile, "config_hash": cell.config_hash,
                                     "git_sha": git_sha(), "device": device, **environment(), **(tags or {}),
                                     "worker": worker_id(), "heartbeat": str(int(time.time()))})  # alive from the start
    run_id, beat, scratch = run.info.run_id, Heartbeat(run.info.run_id, announce=resume is not None), tempfile.mkdtemp(prefix="rnnbench-")
    speed = None
    try:
        taken = claim(client, experiment_id, client.get_run(run_id), cell.config_hash) if exclusive else None
        if taken:  # another worker has this cell: back off without a trace (a resumed run stays KILLED)
            beat.close()
            mlflow.end_run("KILLED")
            if resume is None:
                client.delete_run(run_id)
            return Outcome(cell, "SKIPPED", run_id, error=taken)
        task, train, val, test, module = build(cell, device)
        if resume is None:
            resolved = cell.resolved()
            resolved["model"]["hidden_size"] = module.net.head.in_features  # solved from param_budget
            mlflow.set_tags({"data_source": task.describe()["data_source"], "precision": precision_for(cell, device)})
            mlflow.log_params(flatten(resolved) | {f"task.{k}": str(v) for k, v in task.describe().items()})
            mlflow.log_dict(resolved, "config.yaml")
        speed = TrainSpeed(math.ceil(cell.train.warmup_steps / cell.train.steps_per_call))
        watch = SolveWatch(task, cell.train.stop_when_solved)
        extra = [Checkpointer(run_id, cell.train.checkpoint_minutes, train.generator)] if (
            exclusive and cell.train.checkpoint_minutes) else []
        trainer = trainer_for(cell, device, [MlflowEpochMetrics(run_id), speed, watch, *extra, *(callbacks or [])],
                              progress)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        initial = {k: v.clone() for k, v in module.net.state_dict().items()} if cell.train.gradflow else None
        ckpt = client.download_artifacts(run_id, "checkpoint/last.ckpt", scratch) if resume is not None else None
        trainer.fit(module, train, val, ckpt_path=ckpt, weights_only=True if ckpt else None)  # weights_only: no pickles
        val_loss = trainer.callback_metrics.get("val_loss")  # before test() replaces the metrics
        result = trainer.test(module, test, verbose=False)[0]
        peak = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # CPU: process peak RSS
        metrics = {**{k: float(v) for k, v in result.items()}, "chance_loss": task.chance_loss(),
                   "test_vs_chance": float(result["test_loss"]) / task.chance_loss(), **watch.metrics(),
                   "train_samples_per_s": speed.samples_per_s, "peak_mem_mb": peak,
                   "epoch_time_s": sum(speed.epoch_times) / max(len(speed.epoch_times), 1),
                   "n_params": sum(p.numel() for p in module.parameters()), "epochs_trained": speed.epochs_started}
        solved = task.is_solved(metrics[f"test_{module.metric}"])
        if solved is not None:
            metrics["solved"] = float(solved)
        for length in cell.train.eval_seq_lens:
            metrics[f"test_vs_chance_at_{length}"] = test_at_length(trainer, module, cell, length, device)
        if initial is not None:
            metrics |= record_gradflow(module, initial, task, test, cell.label)
        if cell.model == "attn_rnn":
            record_attention(module.net.backbone, test, cell.label)
        log_model(module.net)
        mlflow.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)})
        taken = claim(client, experiment_id, client.get_run(run_id), cell.config_hash) if exclusive else None
        if taken and taken.startswith("finished"):  # checked again before marking done: one FINISHED run a cell
            mlflow.set_tag("duplicate", taken)
            mlflow.end_run("KILLED")
            return Outcome(cell, "SKIPPED", run_id, metrics, error=taken)
        mlflow.end_run("FINISHED")
        return Outcome(cell, "FINISHED", run_id, metrics, val_loss=None if val_loss is None else float(val_loss))
    except TrialPruned:
        epochs = speed.epochs_started if speed else 0  # the pruned epoch was trained and validated
        mlflow.set_tags({"optuna_state": "PRUNED", "pruned_at_epoch": str(epochs)})
        mlflow.log_metric("epochs_trained", epochs)
        mlflow.end_run("FINISHED")
        return Outcome(cell, "PRUNED", run_id, {"epochs_trained": epochs})
    except (KeyboardInterrupt, SystemExit):  # Lightning turns Ctrl-C into SystemExit(1)
        mlflow.end_run("KILLED")
        raise KeyboardInterrupt from None
    except Exception as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        mlflow.set_tag("error", f"{type(e).__name__}: {message}"[:5000])
        mlflow.log_text(traceback.format_exc(), "error.txt")
        mlflow.end_run("FAILED")
        if isinstance(e, UserError):
            raise
        return Outcome(cell, "FAILED", run_id, error=f"{type(e).__name__}: {message}")
    finally:
        beat.close()
        shutil.rmtree(scratch, ignore_errors=True)


def run_matrix(cells: list[Cell], experiment_id: str, profile: str, force: bool = False,
               progress: bool | None = None, tags: dict[str, dict] | None = None) -> list[Outcome]:
    """Every cell in turn; finished cells (same config_hash) are skipped unless forced.

    Safe with other workers on the same store (overlapping shards, requeued jobs): stale runs are
    marked KILLED first, the store is checked again before each cell, a cell another live worker
    is training is left to it, and a stopped run with a checkpoint is resumed rather than restarted.
    `tags` maps a cell's config_hash to extra tags for its run (e.g. the study a tuned cell came from).
    """
    from tqdm.auto import tqdm

    from suite.cluster import reap_stale_runs
    from suite.tracking import finished_runs

    tty = sys.stderr.isatty() if progress is None else progress
    reap_stale_runs([experiment_id])
    done = {} if force else finished_runs(experiment_id, [c.config_hash for c in cells])
    outcomes, started = [], time.perf_counter()
    with tqdm(total=len(cells), desc="matrix", unit="cell", disable=not tty, dynamic_ncols=True) as bar:
        for i, cell in enumerate(cells, 1):
            found = done.get(cell.config_hash) or (None if force else _guarded(cell, lambda: finished_runs(
                experiment_id, [cell.config_hash]), outcomes).get(cell.config_hash))  # another worker's, meanwhile
            if found is not None:
                outcome = Outcome(cell, "SKIPPED", found.info.run_id, dict(found.data.metrics))
                note = "already finished, skipped (--force reruns)"
            else:
                bar.set_postfix_str(cell.label)
                resume = None if force else _guarded(cell, lambda: resumable(experiment_id, cell.config_hash), outcomes)
                outcome = _guarded(cell, lambda: run_cell(cell, experiment_id, profile, progress=tty, resume=resume,
                                                          tags=(tags or {}).get(cell.config_hash), exclusive=not force),
                                   outcomes)
                note = f"left to another worker: {outcome.error}" if outcome.status == "SKIPPED" else _headline(outcome)
                if resume is not None:
                    note += f" (resumed run {resume.info.run_id} from epoch {resume.data.tags['checkpoint_epoch']})"
            outcomes.append(outcome)
            bar.update()
            elapsed = time.perf_counter() - started
            trained = sum(o.status != "SKIPPED" for o in outcomes)
            eta = elapsed / max(trained, 1) * sum(1 for c in cells[i:] if c.config_hash not in done)
            line = f"[{i}/{len(cells)}] {cell.label}: {note}  (elapsed {_clock(elapsed)}, eta {_clock(eta)})"
            bar.write(line) if tty else print(line, flush=True)
    return outcomes


def resumable(experiment_id: str, config_hash: str):
    """The newest KILLED run of the cell with a checkpoint (a preempted, interrupted or stale one), or None."""
    from mlflow import MlflowClient

    runs = MlflowClient().search_runs([experiment_id], f"tags.config_hash = '{config_hash}' and "
                                      "attributes.status = 'KILLED' and tags.checkpoint_epoch != ''",
                                      max_results=1, order_by=["attributes.start_time DESC"])
    runs = [r for r in runs if "duplicate" not in r.data.tags]
    return runs[0] if runs else None


def _guarded(cell: Cell, run, outcomes: list[Outcome]):
    """run(); if it fails because the tracking store is gone, stop the matrix with one clear line."""
    from suite.tracking import reachable

    try:
        return run()
    except (UserError, KeyboardInterrupt):
        raise
    except Exception as e:
        import mlflow

        uri = mlflow.get_tracking_uri()
        if reachable(uri):
            raise
        from suite.tracking import redact

        kept = sum(o.status in ("FINISHED", "SKIPPED") for o in outcomes)
        raise UserError(f"tracking store {redact(uri)} lost during {cell.label} ({type(e).__name__}, after "
                        f"MLflow's retries); {kept} finished cells are kept: rerun the same command when it is "
                        "back to finish the rest") from None


def log_model(net):
    """The trained network's weights as model.pt (load with torch.load(..., weights_only=True))."""
    import tempfile

    import mlflow
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        torch.save(net.state_dict(), f"{tmp}/model.pt")
        mlflow.log_artifact(f"{tmp}/model.pt")


def record_attention(backbone, test, title: str, n: int = 4):
    """attention.npy (n test sequences, T x T) and attention.png: which past steps each output looks at."""
    import tempfile

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow
    import numpy as np

    x, _ = next(iter(test))
    maps = backbone.attention_weights(x[:n]).float().cpu().numpy()
    fig, axes = plt.subplots(1, len(maps), figsize=(3.2 * len(maps), 3.2), squeeze=False)
    for i, (ax, m) in enumerate(zip(axes[0], maps)):
        ax.imshow(m, cmap="viridis", aspect="auto", interpolation="nearest")
        ax.set(title=f"sequence {i}", xlabel="attended step", ylabel="output step" if i == 0 else None)
    fig.suptitle(f"attention: {title}")
    fig.tight_layout()
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/attention.npy", maps)
        fig.savefig(f"{tmp}/attention.png")
        mlflow.log_artifact(f"{tmp}/attention.npy")
        mlflow.log_artifact(f"{tmp}/attention.png")
    plt.close(fig)


def record_gradflow(module, initial: dict, task, test, title: str) -> dict:
    """‖∂L/∂h_t‖ at initialisation and after training on a test batch: CSV, plot and decay metrics."""
    import copy
    import tempfile

    import mlflow

    from suite import gradflow

    x, y = next(iter(test))
    x, y = x[:256], y[:256]
    fresh = copy.deepcopy(module.net)
    fresh.load_state_dict(initial)
    curves = {"init": gradflow.hidden_grad_norms(fresh, task, x, y),
              "trained": gradflow.hidden_grad_norms(module.net, task, x, y)}
    mlflow.log_text(gradflow.to_csv(curves), "gradflow.csv")
    with tempfile.TemporaryDirectory() as tmp:
        gradflow.plot(curves, f"gradient flow: {title}", f"{tmp}/gradflow.png")
        mlflow.log_artifact(f"{tmp}/gradflow.png")
    return {"grad_decay_per_step_init": gradflow.decay_per_step(curves["init"]),
            "grad_decay_per_step": gradflow.decay_per_step(curves["trained"])}


def test_at_length(trainer, module, cell: Cell, length: int, device: str) -> float:
    """test_loss / chance loss of the trained model on the task's test set at another length."""
    import dataclasses

    from suite.data import Batches
    from tasks import TASKS

    if "seq_len" not in dataclasses.asdict(cell.task_cfg):
        raise UserError(f"train.eval_seq_lens: task {cell.task} has a fixed length")
    task = TASKS[cell.task](dataclasses.replace(cell.task_cfg, seq_len=length))
    x, y = task.splits(1, cell.train.n_test, device)["test"]
    result = trainer.test(module, Batches(x, y, cell.train.eval_batch_size), verbose=False)[0]
    return float(result["test_loss"]) / task.chance_loss()


def _headline(o: Outcome) -> str:
    if o.status == "FAILED":
        return f"FAILED ({o.error})"
    m = o.metrics
    score = f"test_acc {m['test_acc']:.3f}" if "test_acc" in m else f"test_mse {m.get('test_mse', float('nan')):.4f}"
    return f"{score}, test_loss {m['test_loss']:.4f}, {m['train_samples_per_s']:.0f} samples/s"


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"
