"""objective(trial): the cell with the trial's parameters, trained as a nested MLflow run; returns val_loss."""
from __future__ import annotations

import sys

from suite.config import Cell
from suite.tuning.space import Param, with_params
from suite.tuning.worker import TrialFailed


def run_link(store, run_id: str) -> str:
    """Where the trial's run is in the MLflow UI (the tracking server's own, else `make ui`'s address)."""
    from urllib.parse import urlsplit

    parts = urlsplit(store.uri)
    base = (f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"
            if parts.scheme in ("http", "https") else "http://127.0.0.1:5000")
    return f"{base}/#/experiments/{store.experiment_id}/runs/{run_id}?workflowType=machine_learning"


def pruning_callback(trial, monitor: str = "val_loss"):
    """optuna-integration's Lightning pruning callback, except that a trial which reached its last epoch has trained
    fully and completes: it reports that epoch's value but is never thrown away as pruned."""
    from optuna_integration import PyTorchLightningPruningCallback

    class CompleteAtTheEnd(PyTorchLightningPruningCallback):
        def on_validation_end(self, trainer, pl_module):
            if not trainer.sanity_checking and trainer.max_epochs and pl_module.current_epoch + 1 >= trainer.max_epochs:
                value = trainer.callback_metrics.get(self.monitor)
                if value is not None:
                    self._trial.report(float(value), step=pl_module.current_epoch)
                return
            super().on_validation_end(trainer, pl_module)

    return CompleteAtTheEnd(trial, monitor=monitor)


def make_objective(store, cell: Cell, space: list[Param], profile: str, parent_run_id: str):
    import optuna

    from suite.runner import run_cell

    def objective(trial) -> float:
        params = {p.key: p.suggest(trial) for p in space}
        tags = {"mlflow.parentRunId": parent_run_id, "study": trial.study.study_name, "optuna_trial": str(trial.number)}
        outcome = run_cell(store, with_params(cell, params), profile, role="trial", progress=sys.stderr.isatty(),
                           tags=tags, callbacks=[pruning_callback(trial)],
                           name=f"trial-{trial.number}")
        state = {"FINISHED": "COMPLETE", "PRUNED": "PRUNED"}.get(outcome.status, "FAIL")
        if outcome.run_id:
            store.client.set_tag(outcome.run_id, "optuna_state", state)
            if state != "COMPLETE":  # the runs table shows the name: say there what became of the trial
                store.client.update_run(outcome.run_id, name=f"trial-{trial.number} ({state.lower()})")
            trial.set_user_attr("mlflow_run", run_link(store, outcome.run_id))
        trial.set_user_attr("mlflow_run_id", outcome.run_id)
        trial.set_user_attr("epochs_trained", outcome.metrics.get("epochs_trained", 0))
        if state == "PRUNED":
            raise optuna.TrialPruned(f"pruned after epoch {outcome.metrics['epochs_trained']}")
        if state == "FAIL" or outcome.val_loss is None:
            raise TrialFailed(outcome.error or "no validation loss")
        return outcome.val_loss

    return objective
