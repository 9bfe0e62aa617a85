"""Optuna tunes one model on one task: a plain objective(trial), pruned, resumable, parallel, in MLflow.

Every model on a task gets the same budget (the profile's `tune:` section and the task's epochs).
A study is named <profile>-<model>-<task>-T<len>; calling again tops it up to `trials` instead of
starting over. MLflow gets one parent run per study and one nested run per trial.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import sys
import time
import warnings
from pathlib import Path

import yaml
from pydantic import ValidationError

from suite.config import CONFIGS, Cell, TuneConfig, apply_sets, plan
from suite.errors import UserError

JOURNAL = "optuna-journal.log"  # beside mlflow.db; see storage_url()
COUNTED = ("COMPLETE", "PRUNED", "RUNNING", "WAITING")  # states that fill a study's budget (FAIL is retried)
MAX_RETRY = 3  # a trial whose worker died is run again (same parameters) up to this many times


def study_name(profile: str, cell: Cell) -> str:
    return f"{profile}-{cell.model}-{cell.task}-T{cell.seq_len}"


@dataclasses.dataclass(frozen=True)
class Param:
    key: str  # a config path, as in --set: train.lr, model.heads, task.seq_len
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple | None = None

    def suggest(self, trial):
        if self.choices is not None:
            return trial.suggest_categorical(self.key, list(self.choices))
        if all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high)) and self.step in (None, 1):
            return trial.suggest_int(self.key, self.low, self.high, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)


def load_space(model: str, base_raw: dict, path: str | None = None) -> list[Param]:
    """The model's search space from configs/search/<model>.yaml, checked against the config schema."""
    path = Path(path) if path else CONFIGS / "search" / f"{model}.yaml"
    if not path.is_file():
        raise UserError(f"search space: {path} not found (one YAML a model under configs/search/)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({getattr(e, 'problem', e)})") from None
    space = []
    for key, spec in data.items():
        where = f"{path}: {key}"
        if not isinstance(spec, dict):
            raise UserError(f"{where}: expected {{low: .., high: ..}} or {{choices: [..]}}")
        unknown = set(spec) - {"low", "high", "log", "step", "choices"}
        if unknown:
            raise UserError(f"{where}: unknown key {sorted(unknown)[0]}; allowed: low, high, log, step, choices")
        if "choices" in spec:
            if not isinstance(spec["choices"], list) or not spec["choices"]:
                raise UserError(f"{where}.choices: expected a non-empty list")
            param, probes = Param(key, choices=tuple(spec["choices"])), spec["choices"]
        else:
            low, high = spec.get("low"), spec.get("high")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
                raise UserError(f"{where}: needs numeric low and high (or choices)")
            if low >= high:
                raise UserError(f"{where}: low ({low}) must be below high ({high})")
            if spec.get("log") and low <= 0:
                raise UserError(f"{where}: a log range needs low > 0 (got {low})")
            param, probes = Param(key, low, high, bool(spec.get("log")), spec.get("step")), [low, high]
        for value in probes:  # every end of the range must make a valid config
            plan(apply_sets(base_raw, [f"{key}={_yaml(value)}"]), f"{path} ({key}={value})")
        space.append(param)
    return space


def _yaml(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def with_params(cell: Cell, params: dict) -> Cell:
    """The cell with a trial's (or a study's best) parameters applied, validated like any config."""
    from suite.config import TrainConfig
    from suite.models import ModelConfig
    from tasks import TASKS

    sections = {"model": dataclasses.asdict(cell.model_cfg), "train": dataclasses.asdict(cell.train),
                "task": dataclasses.asdict(cell.task_cfg)}
    for key, value in params.items():
        head, _, field = key.partition(".")
        if head not in sections or not field:
            raise UserError(f"search space: {key}: keys start with model., train. or task.")
        sections[head][field] = value
    try:
        return dataclasses.replace(cell, model_cfg=ModelConfig(**sections["model"]),
                                   train=TrainConfig(**sections["train"]),
                                   task_cfg=TASKS[cell.task].Config(**sections["task"]))
    except (ValidationError, TypeError) as e:
        raise UserError(f"search space: {e}".splitlines()[0]) from None


def storage_url(cli: str | None, tracking_uri: str, profile: str | None = None) -> str:
    """--storage, else $RNNBENCH_OPTUNA_STORAGE, else the profile's stores.optuna_storage, else a journal
    file beside the local MLflow store.

    The journal file (Optuna's JournalFileBackend) takes appends under a file lock, so several local
    worker processes share it safely; SQLite serialises writers and answers "database is locked".
    """
    url = cli or os.environ.get("RNNBENCH_OPTUNA_STORAGE") or profile
    if url:
        return url
    folder = Path(tracking_uri.removeprefix("sqlite:///")).parent if tracking_uri.startswith("sqlite:///") else Path(".")
    return str(folder / JOURNAL)


def open_storage(url: str):
    """The journal file (a path) or an RDB storage (a SQLAlchemy URL) with heartbeats.

    With RDB storage every running trial beats; one silent past the grace period (its worker was
    killed, its node lost) is failed by the next worker and retried with the same parameters.
    """
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    from suite.cluster import HEARTBEAT_S
    from suite.tracking import redact

    if "://" not in url:  # a path: the journal file
        from optuna.storages.journal import JournalFileBackend

        if not Path(url).resolve().parent.exists():
            raise UserError(f"--storage: folder of {url} does not exist")
        return optuna.storages.JournalStorage(JournalFileBackend(url))
    if url.split("://")[0].split("+")[0] not in ("sqlite", "postgresql", "mysql"):
        raise UserError(f"--storage: {redact(url)}: expected a path, or a postgresql://, mysql:// or sqlite:/// URL")
    beat = max(1, round(HEARTBEAT_S))
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats: stable since 2.9
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")  # ask/tell beats too (run_worker)
    try:
        with claim_lock(url, "rnnbench-schema"):  # workers starting together would race to create the tables
            return optuna.storages.RDBStorage(url, heartbeat_interval=beat, grace_period=3 * beat,
                                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(MAX_RETRY),
                                              engine_kwargs={"pool_pre_ping": True})
    except Exception as e:
        raise UserError(f"--storage: cannot open {redact(url)} ({type(e).__name__}); check the URL and the server") from None


@contextlib.contextmanager
def claim_lock(url: str, name: str):
    """Serialises 'count the trials, then ask for one' across every worker of study `name`.

    A journal file or SQLite database: a file lock beside it (one machine). PostgreSQL: an advisory
    lock in the database itself, so workers on many nodes take turns.
    """
    if url.startswith("postgresql"):
        import hashlib

        import sqlalchemy

        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
                try:
                    yield
                finally:
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        finally:
            engine.dispose()
        return
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None if "://" in url else url
    if path is None:  # another database: no cross-process lock; a study may end a trial or two over
        yield
        return
    with open(f"{path}.claim", "a") as handle:  # not .lock: the journal backend's own lock is named so
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fail_dead_trials(study) -> int:
    """Fail the study's RUNNING trials whose worker is gone (and retry them); returns how many.

    Heartbeats (RDB storage) catch workers on any node after the grace period; a worker on this
    machine that died is caught at once by its process id, on any storage (the journal file has no
    heartbeats).
    """
    import copy
    import warnings

    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    from suite.cluster import worker_dead

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        before = counted(study)["FAIL"]
        optuna.storages.fail_stale_trials(study)  # heartbeat-stale trials; the storage's callback retries them
        failed = counted(study)["FAIL"] - before
        storage = study._storage
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if not worker_dead(trial.user_attrs.get("worker")):
                continue
            try:
                if storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                    storage.set_trial_user_attr(trial._trial_id, "fail_reason", f"worker {trial.user_attrs['worker']} died")
                    RetryHeartbeatStaleTrialCallback(MAX_RETRY)(study, copy.deepcopy(trial))
                    failed += 1
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # another worker got there first
    return failed


def make_study(name: str, url: str, tune: TuneConfig, worker: int = 0, epochs: int = 1):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = {"median": lambda: optuna.pruners.MedianPruner(tune.startup_trials, tune.warmup_epochs),
              "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs),
              "none": optuna.pruners.NopPruner}[tune.pruner]()
    return optuna.create_study(study_name=name, storage=open_storage(url), direction="minimize", load_if_exists=True,
                               sampler=optuna.samplers.TPESampler(seed=tune.sampler_seed + worker), pruner=pruner)


def counted(study) -> dict[str, int]:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    return {s.name: sum(t.state == s for t in trials) for s in TrialState}


class TrialFailed(Exception):
    """The trial's run crashed or diverged; the study records it as FAIL and goes on."""


def make_objective(cell: Cell, space: list[Param], experiment_id: str, profile: str, parent_run_id: str):
    """objective(trial): the cell with suggested parameters, trained as a nested run; returns val_loss."""
    import optuna
    from mlflow import MlflowClient
    from optuna_integration import PyTorchLightningPruningCallback

    from suite.runner import run_cell

    def objective(trial) -> float:
        params = {p.key: p.suggest(trial) for p in space}
        tags = {"mlflow.parentRunId": parent_run_id, "mlflow.runName": f"trial-{trial.number}",
                "study": trial.study.study_name, "optuna_trial": str(trial.number)}
        outcome = run_cell(with_params(cell, params), experiment_id, profile, progress=sys.stderr.isatty(), tags=tags,
                           callbacks=[PyTorchLightningPruningCallback(trial, monitor="val_loss")])
        state = {"FINISHED": "COMPLETE", "PRUNED": "PRUNED"}.get(outcome.status, "FAIL")
        MlflowClient().set_tag(outcome.run_id, "optuna_state", state)
        trial.set_user_attr("mlflow_run_id", outcome.run_id)
        trial.set_user_attr("epochs_trained", outcome.metrics.get("epochs_trained", 0))
        if state == "PRUNED":
            raise optuna.TrialPruned(f"pruned after epoch {outcome.metrics['epochs_trained']}")
        if state == "FAIL" or outcome.val_loss is None:
            raise TrialFailed(outcome.error or "no validation loss")
        return outcome.val_loss

    return objective


def run_worker(study_name: str, url: str, cell: Cell, space: list[Param], tune: TuneConfig, trials: int,
               experiment_id: str, profile: str, parent_run_id: str, worker: int = 0, timeout: float | None = None,
               say=print):
    """Run trials until the study holds `trials` COMPLETE/PRUNED ones (failed ones are retried)."""
    import optuna
    from optuna.trial import TrialState

    from optuna.storages._heartbeat import get_heartbeat_thread  # what study.optimize uses; ask/tell has none

    from suite.cluster import worker_id

    study = make_study(study_name, url, tune, worker, cell.train.epochs)
    objective = make_objective(cell, space, experiment_id, profile, parent_run_id)
    started, failures = time.monotonic(), 0
    while timeout is None or time.monotonic() - started < timeout:
        with claim_lock(url, study_name):  # count then ask, atomically, so K workers stop at exactly `trials`
            dead = fail_dead_trials(study)
            if dead:
                from suite.cluster import reap_stale_runs

                say(f"{study_name}: {dead} trial(s) of a dead worker marked FAIL and queued again")
                reap_stale_runs([experiment_id], say)
            n = counted(study)
            if not n["WAITING"] and sum(n[s] for s in COUNTED) >= trials:
                break
            trial = study.ask()  # a retried (WAITING) trial first
            trial.set_user_attr("worker", worker_id())
        try:
            with get_heartbeat_thread(trial._trial_id, study._storage):
                value = objective(trial)
            study.tell(trial, value)
            state, note, failures = "COMPLETE", f"val_loss {value:.4g}", 0
        except optuna.TrialPruned as e:
            study.tell(trial, state=TrialState.PRUNED)
            state, note, failures = "PRUNED", str(e), 0
        except TrialFailed as e:
            trial.set_user_attr("fail_reason", str(e))
            study.tell(trial, state=TrialState.FAIL)
            state, note, failures = "FAIL", str(e), failures + 1
        except KeyboardInterrupt:  # never leave the trial RUNNING: it would hold a slot of the budget
            trial.set_user_attr("fail_reason", "interrupted")
            study.tell(trial, state=TrialState.FAIL)
            raise
        n, best = counted(study), _best_value(study)
        say(f"{study_name}: trial {trial.number} {state} ({note}) · {n['COMPLETE'] + n['PRUNED']}/{trials} done, "
            f"{n['PRUNED']} pruned, {n['FAIL']} failed" + (f", best val_loss {best:.4g}" if best is not None else ""))
        if failures > max(3, trials):
            raise UserError(f"{study_name}: {failures} trials failed in a row; see the runs' error tags")
    return study


def _best_value(study):
    try:
        return study.best_value
    except ValueError:
        return None


def summarise(study, parent_run_id: str) -> dict:
    """Trial counts, epochs trained, best value and parameters, onto the study's parent run.

    Best parameters go in tags and best_params.json: a topped-up study may find new ones, and MLflow
    params are write-once.
    """
    from mlflow import MlflowClient
    from optuna.trial import TrialState

    n = counted(study)
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
    metrics = {"n_complete": n["COMPLETE"], "n_pruned": n["PRUNED"], "n_failed": n["FAIL"],
               "epochs_trained": sum(t.user_attrs.get("epochs_trained", 0) for t in done)}
    client = MlflowClient()
    best = _best_value(study)
    if best is not None:
        metrics["best_val_loss"] = best
        for key, value in study.best_params.items():
            client.set_tag(parent_run_id, f"best.{key}", str(value))
        client.set_tag(parent_run_id, "best.trial", str(study.best_trial.number))
        client.log_dict(parent_run_id, {"value": best, "params": study.best_params,
                                        "trial": study.best_trial.number}, "best_params.json")
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    client.log_batch(parent_run_id, metrics=[Metric(k, float(v), now, len(done)) for k, v in metrics.items()])
    return metrics
