"""`rnnbench gradflow`: ‖∂L/∂h_t‖ per step at initialisation and trained, for each model on one task.

The models are trained as benchmark cells (or found already trained, or read from --checkpoint's run);
the measurement itself is suite/diagnostics.py, for every backbone that can expose its states.
"""
from __future__ import annotations

import math
import tempfile

from suite.errors import UserError


def gradflow(exp, task: str, checkpoint: str | None = None, tracking: str | None = None,
             experiment: str | None = None) -> int:
    import torch
    import yaml

    from suite.benchmark import store_for
    from suite.config import cell_from_resolved
    from suite.diagnostics import decay_per_step, hidden_grad_norms, unmeasurable
    from suite.train import build, device_for

    cells = [c for c in exp.first_seed() if c.seq_len == exp.cells[0].seq_len]
    store = store_for(exp, tracking, experiment, kind="gradflow")
    if checkpoint:
        if len(cells) != 1:
            raise UserError("--checkpoint: measures one model's run; name it with --models")
        try:
            resolved = store.client.download_artifacts(checkpoint, "config.yaml", tempfile.mkdtemp())
        except Exception:
            raise UserError(f"--checkpoint: run {checkpoint} not found, or it has no config.yaml") from None
        cells, trained = [cell_from_resolved(yaml.safe_load(open(resolved)))], {}
        trained[cells[0].model] = checkpoint
    else:
        trained = _trained_runs(exp, cells, tracking, experiment)
    curves, skipped = {}, {}
    for cell in cells:
        device = device_for(cell)
        task_obj, _, _, test, fresh = build(cell, device)
        reason = unmeasurable(fresh.net.backbone)
        if reason:
            skipped[cell.model] = reason
            print(f"gradflow: {cell.model} skipped: {reason}", flush=True)
            continue
        x, y = next(iter(test))
        x, y = x[:256], y[:256]
        curves[f"{cell.model} init"] = hidden_grad_norms(fresh.net.to(device), task_obj, x, y)
        weights = store.client.download_artifacts(trained[cell.model], "model.pt", tempfile.mkdtemp())
        fresh.net.load_state_dict(torch.load(weights, map_location=device, weights_only=True))
        curves[f"{cell.model} trained"] = hidden_grad_norms(fresh.net, task_obj, x, y)
    if not curves:
        raise UserError(f"gradflow: none of {', '.join(skipped)} exposes its states (unroll); nothing to measure")
    measured = [c for c in cells if c.model not in skipped]
    slopes = {k: decay_per_step(v) for k, v in curves.items()}
    run = _record(store, task, cells, measured, trained, curves, slopes, skipped, exp.name)
    print("grad_decay_per_step (slope of log‖∂L/∂h_t‖ per step from the loss; < 0 vanishes, > 0 explodes)")
    for cell in measured:
        print(f"  {cell.model:9s} init {slopes[cell.model + ' init']:+.4f}   "
              f"trained {slopes[cell.model + ' trained']:+.4f}")
    print(f"Run {run} in experiment {store.experiment}: gradflow.csv, gradflow.png")
    return 0


def _trained_runs(exp, cells, tracking, experiment) -> dict[str, str]:
    """Train (or find already trained) each model's cell in the benchmark's experiment: model -> run id."""
    from suite.benchmark import store_for
    from suite.runner import run_matrix
    from suite.tracking import finished_runs

    bench = store_for(exp, tracking, experiment)
    run_matrix(bench, cells, exp.name)
    found = finished_runs(bench, [c.config_hash for c in cells])
    missing = [c.label for c in cells if c.config_hash not in found]
    if missing:
        raise UserError(f"gradflow: {missing[0]} has no finished run to measure")
    return {c.model: found[c.config_hash].info.run_id for c in cells}


def _record(store, task, cells, measured, trained, curves, slopes, skipped, profile):
    from suite.diagnostics import plot_gradflow, to_csv
    from suite.tracking import ROLE, log_metrics, parent_run

    tags = {ROLE: "gradflow", "task": task, "profile": profile, "models": ",".join(c.model for c in measured),
            "seq_len": str(cells[0].seq_len), "trained_runs": ",".join(trained[c.model] for c in measured),
            **{f"skipped.{m}": r for m, r in skipped.items()}}
    with parent_run(store, f"gradflow-{task}", tags, heartbeat=False) as run:
        log_metrics(store.client, run, {("grad_decay_per_step_init_" if k.endswith(" init") else "grad_decay_per_step_")
                                        + k.split()[0]: v for k, v in slopes.items() if math.isfinite(v)})
        store.client.log_text(run, to_csv(curves), "gradflow.csv")
        with tempfile.TemporaryDirectory() as tmp:
            plot_gradflow(curves, f"gradient flow on {task} T={cells[0].seq_len}", f"{tmp}/gradflow.png")
            store.client.log_artifact(run, f"{tmp}/gradflow.png")
    return run
