"""A worker's loop on one study: count then ask under the study's lock, run the trial, tell, repeat."""
from __future__ import annotations

import hashlib
import time
import warnings

from suite.compat import study_storage, trial_heartbeat, trial_id
from suite.config import Cell, TuneConfig
from suite.tuning.storage import MAX_RETRY, claim_lock, open_storage

COUNTED = ("COMPLETE", "PRUNED", "RUNNING", "WAITING")  # states that fill a study's budget (FAIL is retried)


class TrialFailed(Exception):
    """The trial's run crashed or diverged; the study records it as FAIL and goes on."""


def trial_seed(sampler_seed: int, study: str, number: int) -> int:
    """The sampler's seed for the study's trial `number`: one of its own for every trial, whoever asks for it (any
    process, worker or top-up), so trials draw distinct parameters, and the same study asks them again."""
    digest = hashlib.sha256(f"{sampler_seed}:{study}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def sampler(seed: int):
    import optuna

    return optuna.samplers.TPESampler(seed=seed)


def make_study(name: str, url: str, tune: TuneConfig, epochs: int = 1):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = {"median": lambda: optuna.pruners.MedianPruner(tune.startup_trials, tune.warmup_epochs),
              "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs),
              "none": optuna.pruners.NopPruner}[tune.pruner]()
    study = optuna.create_study(study_name=name, storage=open_storage(url), direction="minimize", load_if_exists=True,
                                sampler=sampler(tune.sampler_seed), pruner=pruner)  # reseeded per trial
    if study.metric_names != ["val_loss"]:
        with warnings.catch_warnings():  # experimental in some versions
            warnings.simplefilter("ignore")
            study.set_metric_names(["val_loss"])  # optuna-dashboard shows "val_loss", not "Objective 0"
    return study


def counted(study) -> dict[str, int]:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    return {s.name: sum(t.state == s for t in trials) for s in TrialState}


def best_value(study):
    try:
        return study.best_value
    except ValueError:
        return None


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
        storage = study_storage(study)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if not worker_dead(trial.user_attrs.get("worker")):
                continue
            try:
                if storage.set_trial_state_values(trial_id(trial), state=TrialState.FAIL):
                    reason = f"worker {trial.user_attrs['worker']} died"
                    storage.set_trial_user_attr(trial_id(trial), "fail_reason", reason)
                    RetryHeartbeatStaleTrialCallback(MAX_RETRY)(study, copy.deepcopy(trial))
                    failed += 1
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # another worker got there first
    return failed


def run_worker(study_name: str, url: str, cell: Cell, objective, tune: TuneConfig, trials: int, store,
               timeout: float | None = None, say=print):
    """Run trials until the study holds `trials` COMPLETE/PRUNED ones (failed ones are retried).

    Returns the study and one line for each trial of this worker that failed (crashed or diverged); it stops
    early when more than max(3, trials) fail in a row.
    """
    import optuna
    from optuna.trial import TrialState

    from suite.cluster import reap_stale_runs, worker_id

    study = make_study(study_name, url, tune, cell.train.epochs)
    started, failures, failed = time.monotonic(), 0, []
    while timeout is None or time.monotonic() - started < timeout:
        with claim_lock(url, study_name):  # count then ask, atomically, so K workers stop at exactly `trials`
            dead = fail_dead_trials(study)
            if dead:
                say(f"{study_name}: {dead} trial(s) of a dead worker marked FAIL and queued again")
                reap_stale_runs(store.client, [store.experiment_id], say)
            n = counted(study)
            if not n["WAITING"] and sum(n[s] for s in COUNTED) >= trials:
                break
            # Seeded by the trial's number (the count, under the lock): two processes, or a top-up, seeded alike
            # would otherwise draw the same parameters again (TPE's first trials are random draws).
            seed = trial_seed(tune.sampler_seed, study_name, sum(n.values()))
            study.sampler = sampler(seed)
            trial = study.ask()  # a retried (WAITING) trial first, with its own parameters
            trial.set_user_attr("worker", worker_id())
            trial.set_user_attr("sampler_seed", seed)
        try:
            with trial_heartbeat(trial, study):
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
            failed.append(f"FAILED {study_name} trial {trial.number}: {e}")
        except KeyboardInterrupt:  # never leave the trial RUNNING: it would hold a slot of the budget
            trial.set_user_attr("fail_reason", "interrupted")
            study.tell(trial, state=TrialState.FAIL)
            raise
        n, best = counted(study), best_value(study)
        say(f"{study_name}: trial {trial.number} {state} ({note}) · {n['COMPLETE'] + n['PRUNED']}/{trials} done, "
            f"{n['PRUNED']} pruned, {n['FAIL']} failed" + (f", best val_loss {best:.4g}" if best is not None else ""))
        if failures > max(3, trials):
            failed.append(f"FAILED {study_name}: stopped after {failures} trials failed in a row")
            break
    return study, failed
