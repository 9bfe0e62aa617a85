"""objective(trial): the cell with the trial's parameters, trained as a nested MLflow run; returns val_loss."""
from __future__ import annotations

import sys

from suite.config import Cell
from suite.tuning.space import Param, with_params
from suite.tuning.worker import TrialFailed


def make_objective(store, cell: Cell, space: list[Param], profile: str, parent_run_id: str):
    import optuna
    from optuna_integration import PyTorchLightningPruningCallback

    from suite.runner import run_cell

    def objective(trial) -> float:
        params = {p.key: p.suggest(trial) for p in space}
        tags = {"mlflow.parentRunId": parent_run_id, "study": trial.study.study_name, "optuna_trial": str(trial.number)}
        outcome = run_cell(store, with_params(cell, params), profile, role="trial", progress=sys.stderr.isatty(),
                           tags=tags, callbacks=[PyTorchLightningPruningCallback(trial, monitor="val_loss")],
                           name=f"trial-{trial.number}")
        state = {"FINISHED": "COMPLETE", "PRUNED": "PRUNED"}.get(outcome.status, "FAIL")
        if outcome.run_id:
            store.client.set_tag(outcome.run_id, "optuna_state", state)
        trial.set_user_attr("mlflow_run_id", outcome.run_id)
        trial.set_user_attr("epochs_trained", outcome.metrics.get("epochs_trained", 0))
        if state == "PRUNED":
            raise optuna.TrialPruned(f"pruned after epoch {outcome.metrics['epochs_trained']}")
        if state == "FAIL" or outcome.val_loss is None:
            raise TrialFailed(outcome.error or "no validation loss")
        return outcome.val_loss

    return objective
