"""The `tune` command: one study a model x task with the same budget, one parent MLflow run a study, K
worker processes on it; and `benchmark --tuned`, which trains each cell with its study's best parameters.

A study is named <profile>-<model>-<task>-T<len>; calling again tops it up to `trials` instead of
starting over.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

from suite.config import Cell
from suite.errors import UserError
from suite.experiment import Experiment


def study_name(profile: str, cell: Cell) -> str:
    return f"{profile}-{cell.model}-{cell.task}-T{cell.seq_len}"


def tune(exp: Experiment, tracking: str | None = None, experiment: str | None = None, study: str | None = None,
         storage: str | None = None, trials: int | None = None, timeout: float | None = None, workers: int = 1,
         pruner: str | None = None, space: str | None = None, parent_run: str | None = None,
         worker_index: int = 0) -> int:
    """Tune every model x task of the experiment (first seed); `parent_run` makes this a worker process."""
    from suite.cluster import reap_stale_runs
    from suite.runner import open_store
    from suite.stores import tracking_uri
    from suite.tracking import our_experiments
    from suite.tuning.objective import make_objective
    from suite.tuning.space import load_space
    from suite.tuning.storage import open_storage, storage_url
    from suite.tuning.worker import run_worker

    if workers < 1 or (trials is not None and trials < 1):
        raise UserError("--workers and --trials: need at least 1")
    budget = dataclasses.replace(exp.tune, trials=trials or exp.tune.trials, pruner=pruner or exp.tune.pruner)
    cells = list({(c.model, c.task, c.seq_len): c for c in exp.first_seed()}.values())
    if study and len(cells) > 1:
        raise UserError(f"--study: names one study but this tunes {len(cells)}; add --model and --task")
    spaces = {c.model: load_space(c.model, [m for m in exp.first_seed() if m.model == c.model], space)
              for c in cells}  # checked first
    for model, params in spaces.items():  # a value the command pins and the study searches: one must give way
        for key in set(exp.set_keys) & {p.key for p in params}:
            raise UserError(f"--set {key}: the study searches {key} ({model}'s search space), so the value given "
                            f"would be replaced; drop the --set, or give a --space without {key}")
    uri = tracking_uri(tracking, exp.stores.tracking_uri)
    url = storage_url(storage, uri, exp.stores.optuna_storage)
    open_storage(url)  # a bad URL or an unreachable database stops here, before anything is recorded
    exp.check_data()
    store = open_store(uri, experiment or f"rnnbench-tune-{exp.name}")
    if not parent_run:
        reap_stale_runs(store.client, our_experiments(store))
    failed = []
    for cell in cells:
        name = study or study_name(exp.name, cell)
        if parent_run:  # a worker process started by tune_study below
            objective = make_objective(store, cell, spaces[cell.model], exp.name, parent_run)
            _, lines = run_worker(name, url, cell, objective, budget, budget.trials, store,
                                  timeout=timeout, say=lambda m: print(f"[worker {worker_index}] {m}", flush=True))
        else:
            worker_args = [*exp.origin, *_flags(trials=trials, pruner=pruner, timeout=timeout, space=space,
                                                experiment=experiment)]
            lines = tune_study(store, exp.name, cell, name, url, budget, spaces[cell.model], workers, worker_args,
                               timeout)
        failed += lines
    for line in failed:
        print(line, flush=True)
    return 1 if failed else 0


def tune_study(store, profile, cell, name, url, budget, space, workers, worker_args, timeout) -> list[str]:
    """One study: its parent run (found again when topped up), then 1 worker here or K worker processes.
    Returns a line for each failure (a trial that crashed or diverged, a worker that did not finish)."""
    from suite.roles import TAG, Role
    from suite.stores import redact
    from suite.tracking import open_run
    from suite.tuning.objective import make_objective
    from suite.tuning.storage import claim_lock
    from suite.tuning.worker import make_study, run_worker

    facts = {"trials": budget.trials, "epochs": cell.train.epochs, "steps_per_epoch": cell.train.steps_per_epoch,
             "pruner": budget.pruner, "sampler_seed": budget.sampler_seed}
    with claim_lock(url, name):  # workers on other nodes may be starting the same study
        created = make_study(name, url, budget, epochs=cell.train.epochs)
        for key, value in facts.items():
            created.set_user_attr(f"budget.{key}", value)
        found = store.client.search_runs([store.experiment_id],
                                         f"tags.study = '{name}' and tags.{TAG} = '{Role.STUDY}'", max_results=1)
        reopen = found[0].info.run_id if found else _new_study_run(store, name, cell, profile, redact(url), facts)
    print(f"study {name}: {budget.trials} trials, {cell.train.epochs} epochs each, pruner {budget.pruner} · "
          f"storage {redact(url)}", flush=True)
    with open_run(store, f"study-{name}", {}, resume=reopen) as run:
        parent = run.id
        if workers == 1:
            result, failed = run_worker(name, url, cell, make_objective(store, cell, space, profile, parent),
                                        budget, budget.trials, store, timeout=timeout)
        else:
            argv = ["--model", cell.model, "--task", cell.task, "--study", name, "--parent-run", parent, *worker_args]
            procs = [subprocess.Popen([sys.executable, "-m", "suite", "tune", *argv, "--worker-index", str(i)],
                                      env=_worker_env(store.uri, url, i, workers)) for i in range(workers)]
            codes = [p.wait() for p in procs]
            if 130 in codes:
                raise KeyboardInterrupt
            failed = [f"FAILED {name}: worker {i} exited {c} (its lines above say why)"
                      for i, c in enumerate(codes) if c]
            result = make_study(name, url, budget, epochs=cell.train.epochs)
        summary = summarise(result, store, parent)
    best = summary.get("best_val_loss")
    print(f"study {name}: {summary['n_complete']} complete, {summary['n_pruned']} pruned, "
          f"{summary['n_failed']} failed, {summary['epochs_trained']:.0f} epochs trained"
          + (f"; best val_loss {best:.4g} with {result.best_params}" if best is not None else ""), flush=True)
    return failed


def _new_study_run(store, name, cell, profile, storage, facts) -> str:
    """The study's run, made under the study's lock so that workers starting together make one; tune_study then
    opens it (tracking.open_run) as every run is."""
    from mlflow.entities import Param

    from suite.roles import TAG, Role
    from suite.tracking import create_run

    run_id = create_run(store, f"study-{name}", {
        TAG: Role.STUDY, "study": name, "model": cell.model, "task": cell.task, "seq_len": str(cell.seq_len),
        "profile": profile, "storage": storage})
    store.client.log_batch(run_id, params=[Param(f"budget.{k}", str(v)) for k, v in facts.items()])
    return run_id


def _flags(**values) -> list[str]:
    """The command's own settings for the worker processes (the stores go in their environment)."""
    return [item for key, value in values.items() if value is not None
            for item in (f"--{key.replace('_', '-')}", str(value))]


def _worker_env(tracking: str, storage: str, index: int, workers: int) -> dict:
    """A worker's environment: its stores (not on its command line, where `ps` shows passwords), GPU, threads."""
    import torch

    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "RNNBENCH_OPTUNA_STORAGE": storage}
    gpus = torch.cuda.device_count()
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = str(index % gpus)
    env["RNNBENCH_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    return env


def summarise(study, store, parent_run_id: str) -> dict:
    """Trial counts, epochs trained, best value and parameters, onto the study's parent run.

    Best parameters go in tags and best_params.json: a topped-up study may find new ones, and MLflow
    params are write-once.
    """
    from mlflow.entities import RunTag
    from optuna.trial import TrialState

    from suite.tracking import log_metrics
    from suite.tuning.worker import best_value, counted

    n = counted(study)
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
    metrics = {"n_complete": n["COMPLETE"], "n_pruned": n["PRUNED"], "n_failed": n["FAIL"],
               "epochs_trained": sum(t.user_attrs.get("epochs_trained", 0) for t in done)}
    client, best = store.client, best_value(study)
    if best is not None:
        metrics["best_val_loss"] = best
        # one call: two workers ending the study together would collide on set_tag's look-up-then-insert (a
        # PostgreSQL UniqueViolation through a server); log_batch upserts the tags
        tags = {f"best.{key}": str(value) for key, value in study.best_params.items()}
        client.log_batch(parent_run_id, tags=[RunTag(k, v) for k, v in
                                              {**tags, "best.trial": str(study.best_trial.number)}.items()])
        client.log_dict(parent_run_id, {"value": best, "params": study.best_params,
                                        "trial": study.best_trial.number}, "best_params.json")
    log_metrics(client, parent_run_id, metrics, step=len(done))
    if n["COMPLETE"] >= 2:
        study_plots(study, client, parent_run_id)
    return metrics


def study_plots(study, client, run_id: str):
    """Optuna's own optimisation history and parameter importances (its matplotlib visualisation), as PNGs on the
    study's run: the report's tuning section shows them."""
    import tempfile
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ov

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the module is marked experimental
        for name, draw in (("optimization_history", ov.plot_optimization_history),
                           ("param_importances", ov.plot_param_importances)):
            try:
                ax = draw(study)
            except (ValueError, RuntimeError):  # e.g. importances need two parameters that varied
                continue
            ax.figure.set_size_inches(5.6, 3.6)
            ax.figure.tight_layout()
            ax.figure.savefig(f"{tmp}/{name}.png", dpi=100)
            plt.close(ax.figure)
            client.log_artifact(run_id, f"{tmp}/{name}.png")


def tuned_cells(cells: list[Cell], profile: str, url: str) -> tuple[list[Cell], dict]:
    """Each cell with its study's best parameters, and tags naming the study."""
    import optuna

    from suite.tuning.space import with_params
    from suite.tuning.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage, tuned, tags = open_storage(url), [], {}
    for cell in cells:
        name = study_name(profile, cell)
        try:
            study = optuna.load_study(study_name=name, storage=storage)
            params = study.best_params
        except (KeyError, ValueError):
            raise UserError(f"--tuned: no finished study '{name}' in {url}; run `rnnbench tune --profile {profile} "
                            f"--model {cell.model} --task {cell.task}` (or `make tune`) first") from None
        new = with_params(cell, params)
        tuned.append(new)
        tags[new.config_hash] = {"tuned": "true", "study": name, "study_best_trial": str(study.best_trial.number)}
    return tuned, tags
