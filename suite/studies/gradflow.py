"""`rnnbench gradflow`: ‖∂L/∂h_t‖ per step at initialisation and trained, for each model on one task.

The models are trained as benchmark cells (or found already trained, or read from --checkpoint's run);
the measurement itself is suite/diagnostics.py, for every backbone that can expose its states.
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path

from suite.errors import UserError


def gradflow(exp, task: str, checkpoint: str | None = None, tracking: str | None = None,
             experiment: str | None = None, reuse_stale: bool = False) -> int:
    """Measure each model of the experiment on `task` (first seed, first length); 1 when one could not be."""
    from suite.benchmark import store_for
    from suite.diagnostics import decay_per_step, hidden_grad_norms, unmeasurable
    from suite.logged_model import load_network
    from suite.train import assemble, device_for, init_torch

    init_torch()  # also quietens MLflow's download progress bar, before --checkpoint's config.yaml is read
    cells = [c for c in exp.first_seed() if c.seq_len == exp.cells[0].seq_len]
    if checkpoint:  # read before anything is written
        if len(cells) != 1:
            raise UserError("--checkpoint: measures one model's run; name it with --models")
        cells = [_checkpoint_cell(exp, tracking, checkpoint)]
        trained = {cells[0].model: checkpoint}
    store = store_for(exp, tracking, experiment, family="gradflow")
    if not checkpoint:
        trained = _trained_runs(exp, cells, tracking, experiment, reuse_stale)
    curves, skipped, failed = {}, {}, [c for c in cells if c.model not in trained]
    for cell in failed:
        print(f"  FAILED {cell.label}: its training did not finish (see its run's error); not measured", flush=True)
    for cell in (c for c in cells if c.model in trained):
        device = device_for(cell)
        task_obj, _, _, test, fresh = assemble(cell, device)
        reason = unmeasurable(fresh.net.backbone)
        if reason:
            skipped[cell.model] = reason
            print(f"gradflow: {cell.model} skipped: {reason}", flush=True)
            continue
        x, y = next(iter(test))
        x, y = x[:256], y[:256]
        curves[f"{cell.model} init"] = hidden_grad_norms(fresh.net.to(device), task_obj, x, y)
        fresh.net.load_state_dict(load_network(store.client, trained[cell.model]).state_dict())
        curves[f"{cell.model} trained"] = hidden_grad_norms(fresh.net, task_obj, x, y)
    if not curves:
        if failed:
            return 1
        raise UserError(f"gradflow: none of {', '.join(skipped)} exposes its states (unroll); nothing to measure")
    measured = [c for c in cells if c.model in trained and c.model not in skipped]
    slopes = {k: decay_per_step(v) for k, v in curves.items()}
    run = _record(store, task, cells, measured, trained, curves, slopes, skipped, exp.name)
    print("grad_decay_per_step (slope of log‖∂L/∂h_t‖ per step from the loss; < 0 vanishes, > 0 explodes)")
    for cell in measured:
        print(f"  {cell.model:9s} init {slopes[cell.model + ' init']:+.4f}   "
              f"trained {slopes[cell.model + ' trained']:+.4f}")
    print(f"Run {run} in experiment {store.experiment}: gradflow.csv, gradflow.png")
    return 1 if failed else 0


def _checkpoint_cell(exp, tracking, run_id: str):
    """The cell a run trained, from its config.yaml, read (never written) through the store and checked as a
    profile's settings are; its data too, before anything is written."""
    from suite.experiment import check_data
    from suite.stores import check_store, open_client, tracking_uri
    from suite.yamlio import read_yaml

    uri = tracking_uri(tracking, exp.stores.tracking_uri)
    check_store(uri, read_only=True)
    source = f"--checkpoint: run {run_id}'s config.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = Path(open_client(uri).download_artifacts(run_id, "config.yaml", tmp))
        except Exception:
            path = None
        if path is None or not path.is_file():
            raise UserError(f"--checkpoint: run {run_id} not found, or it has no config.yaml")
        resolved = read_yaml(path, "--checkpoint", name=source)  # capped, UTF-8, no aliases: as a profile is read
    cell = cell_from_resolved(resolved, source)
    check_data([cell])
    return cell


def cell_from_resolved(resolved, source: str):
    """The cell a run trained, from its config.yaml (Cell.resolved() as logged), each section checked as a
    profile's are, `source` naming the file in a one-line error: a file read back is user input too."""
    from suite.config import Cell, TrainConfig, checked_seed, validated
    from suite.experiment import validated_section
    from suite.models import MODELS
    from tasks import TASKS

    if not isinstance(resolved, dict) or set(resolved) - {"recipe"} != {"model", "task", "train", "seed"}:
        raise UserError(f"{source}: expected a run's settings: model, task, train, seed and maybe recipe (got "
                        f"{', '.join(map(str, resolved)) if isinstance(resolved, dict) else type(resolved).__name__})")
    (model, model_name), (task, task_name) = (_named(resolved, k, names, source)
                                              for k, names in (("model", MODELS), ("task", TASKS)))
    recipe = resolved.get("recipe", "")
    if not isinstance(recipe, str):
        raise UserError(f"{source}: recipe: expected the name of a recipe search (got {recipe!r})")
    cell = Cell(model_name, task_name, checked_seed(resolved["seed"], source),
                validated(MODELS[model_name].Config, model, "model", source),
                validated(TASKS[task_name].Config, task, "task", source),
                validated_section(TrainConfig, resolved, "train", source), recipe)
    cell.check(source)
    return cell


def _named(resolved: dict, key: str, known: dict, source: str) -> tuple[dict, str]:
    """A config.yaml's model or task section without its `name`, and the name, which must be a registered one."""
    from suite.experiment import section

    settings = dict(section(resolved[key], key, source))
    name = settings.pop("name", None)
    if not isinstance(name, str) or name not in known:
        raise UserError(f"{source}: {key}.name: unknown {key} {name!r}; known: {', '.join(known)}")
    return settings, name


def _trained_runs(exp, cells, tracking, experiment, reuse_stale) -> dict[str, str]:
    """Train (or find already trained) each model's cell in the benchmark's experiment: model -> run id (a cell
    whose training failed is left out)."""
    from suite.benchmark import store_for
    from suite.matrix import Settings, cell_state, run_matrix
    from suite.tracking import finished_runs

    bench = store_for(exp, tracking, experiment)
    run_matrix(bench, cells, Settings(exp.name, reuse_stale=reuse_stale))
    found = finished_runs(bench, [c.config_hash for c in cells])
    states = {c.model: cell_state(c, found, reuse_stale=reuse_stale) for c in cells}
    return {model: state.run.info.run_id for model, state in states.items() if state.done}


def _record(store, task, cells, measured, trained, curves, slopes, skipped, profile):
    from suite.diagnostics import plot_gradflow, to_csv
    from suite.roles import TAG, Role
    from suite.tracking import log_metrics, open_run

    tags = {TAG: Role.GRADFLOW, "task": task, "profile": profile, "models": ",".join(c.model for c in measured),
            "seq_len": str(cells[0].seq_len), "trained_runs": ",".join(trained[c.model] for c in measured),
            **{f"skipped.{m}": r for m, r in skipped.items()}}
    with open_run(store, f"gradflow-{task}", tags, heartbeat=False) as run:
        log_metrics(store.client, run.id, {("grad_decay_per_step_init_" if k.endswith(" init") else
                                            "grad_decay_per_step_") + k.split()[0]: v
                                           for k, v in slopes.items() if math.isfinite(v)})
        store.client.log_text(run.id, to_csv(curves), "gradflow.csv")
        with tempfile.TemporaryDirectory() as tmp:
            plot_gradflow(curves, f"gradient flow on {task} T={cells[0].seq_len}", f"{tmp}/gradflow.png")
            store.client.log_artifact(run.id, f"{tmp}/gradflow.png")
    return run.id
