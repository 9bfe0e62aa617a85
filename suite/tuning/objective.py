"""objective(trial): the cell with the trial's parameters, trained as a nested MLflow run; returns val_loss.

A trial its pruner stops ends its run FINISHED through the pruning callback here (tagged as pruned) and raises
Optuna's TrialPruned on up to the worker, as optuna-examples' Lightning objective does: the core that trains
the cell (suite/runner.py) knows nothing of Optuna.
"""
from __future__ import annotations

import sys

import optuna
from optuna_integration import PyTorchLightningPruningCallback

from suite.config import Cell
from suite.roles import Role
from suite.runner import RunOptions, run_cell
from suite.stores import ui_url
from suite.tracking import RunStopped
from suite.tuning.space import Param, with_params
from suite.tuning.worker import TrialFailed


class Pruned(optuna.TrialPruned, RunStopped):
    """Optuna's TrialPruned that also ends the trial's run as complete as far as it went (FINISHED)."""


def run_link(store, run_id: str) -> str:
    """Where the trial's run is in the MLflow UI (the tracking server's own, else `make ui`'s address)."""
    return f"{ui_url(store.uri)}/#/experiments/{store.experiment_id}/runs/{run_id}?workflowType=machine_learning"


def pruning_callback(trial, run=None, monitor: str = "val_loss"):
    """optuna-integration's Lightning pruning callback, except that a trial which reached its last epoch has trained
    fully and completes: it reports that epoch's value but is never thrown away as pruned. A pruned trial's run
    (`run`, a tracking.Run) is tagged with the epoch it stopped after, and its name says so."""

    class CompleteAtTheEnd(PyTorchLightningPruningCallback):
        def on_validation_end(self, trainer, pl_module):
            if not trainer.sanity_checking and trainer.max_epochs and pl_module.current_epoch + 1 >= trainer.max_epochs:
                value = trainer.callback_metrics.get(self.monitor)
                if value is not None:
                    self._trial.report(float(value), step=pl_module.current_epoch)
                return
            try:
                super().on_validation_end(trainer, pl_module)
            except optuna.TrialPruned:
                epochs = pl_module.current_epoch + 1  # the pruned epoch was trained and validated
                if run is not None:
                    for key, value in (("optuna_state", "PRUNED"), ("pruned_at_epoch", str(epochs))):
                        run.client.set_tag(run.id, key, value)
                    run.client.log_metric(run.id, "epochs_trained", epochs)
                    run.client.update_run(run.id, name=f"trial-{trial.number} (pruned)")
                    trial.set_user_attr("epochs_trained", epochs)
                raise Pruned(f"pruned after epoch {epochs}") from None

    return CompleteAtTheEnd(trial, monitor=monitor)


def make_objective(store, cell: Cell, space: list[Param], profile: str, parent_run_id: str):
    def objective(trial) -> float:
        params = {p.key: p.suggest(trial) for p in space}
        tags = {"mlflow.parentRunId": parent_run_id, "study": trial.study.study_name, "optuna_trial": str(trial.number),
                "sampler_seed": str(trial.user_attrs.get("sampler_seed", ""))}

        def callbacks(run):
            trial.set_user_attr("mlflow_run_id", run.id)
            trial.set_user_attr("mlflow_run", run_link(store, run.id))
            return [pruning_callback(trial, run)]

        outcome = run_cell(store, with_params(cell, params), profile, RunOptions(
            Role.TRIAL, tags, callbacks, progress=sys.stderr.isatty(), name=f"trial-{trial.number}"))
        state = "COMPLETE" if outcome.status == "FINISHED" else "FAIL"
        if outcome.run_id:
            store.client.set_tag(outcome.run_id, "optuna_state", state)
            if state != "COMPLETE":  # the runs table shows the name: say there what became of the trial
                store.client.update_run(outcome.run_id, name=f"trial-{trial.number} ({state.lower()})")
            trial.set_user_attr("mlflow_run", run_link(store, outcome.run_id))
        trial.set_user_attr("mlflow_run_id", outcome.run_id)
        trial.set_user_attr("epochs_trained", outcome.metrics.get("epochs_trained", 0))
        if state == "FAIL" or outcome.val_loss is None:
            raise TrialFailed(outcome.error or "no validation loss")
        return outcome.val_loss

    return objective
