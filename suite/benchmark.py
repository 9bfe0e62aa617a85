"""The `run` and `benchmark` commands: cells of an experiment into MLflow, then the results table."""
from __future__ import annotations

import dataclasses
import json
import sys
import time

from suite.errors import UserError
from suite.experiment import Experiment


def store_for(exp: Experiment, tracking: str | None, experiment: str | None, family: str = ""):
    """The command's store and experiment (rnnbench-[<family>-]<name> unless --experiment names one)."""
    from suite.runner import open_store
    from suite.stores import tracking_uri

    exp.check_data()
    return open_store(tracking_uri(tracking, exp.stores.tracking_uri),
                      experiment or f"rnnbench-{family + '-' if family else ''}{exp.name}")


def run_one(exp: Experiment, tracking: str | None = None, experiment: str | None = None, force: bool = False,
            reuse_stale: bool = False) -> int:
    """Train one cell (skipped if it already finished) and print its row."""
    from suite.console import results_table
    from suite.matrix import Settings, run_matrix
    from suite.tracking import log_plan

    cells = exp.first_seed()
    if len(cells) != 1:
        raise UserError(f"run trains one cell but this config has {len(cells)}; pick one with --model/--task "
                        "(or use `rnnbench benchmark`)")
    store = store_for(exp, tracking, experiment)
    log_plan(store, exp.matrix, exp.cells)
    (outcome,) = run_matrix(store, cells, Settings(exp.name, force=force, reuse_stale=reuse_stale))
    print(results_table([outcome]))
    if outcome.status == "FAILED":
        print(f"FAILED: {outcome.error}", file=sys.stderr)
        return 1
    return 0


def benchmark(exp: Experiment, tracking: str | None = None, experiment: str | None = None, shard: str | None = None,
              tuned: bool = False, storage: str | None = None, force: bool = False, reuse_stale: bool = False,
              jobs: tuple = (None, None), dry_run: bool = False) -> int:
    """Every cell of the experiment (or of one shard), with tuned parameters if asked; the table at the end.
    `jobs` (--jobs, --jobs-per-gpu) packs cells side by side; `dry_run` only prints the plan and its estimate."""
    from suite.cluster import parse_shard
    from suite.cluster import shard as cluster_shard
    from suite.console import overall_block, results_table
    from suite.matrix import Settings, run_matrix
    from suite.packing import choose_packing
    from suite.recipe import label
    from suite.recipe import plan as searches
    from suite.search import cost_line, search
    from suite.stores import DEFAULT_UI, tracking_uri, ui_url
    from suite.tracking import log_plan

    cells, spec, recipe = exp.cells, parse_shard(shard), exp.recipe
    if tuned:  # each model x task's study chose its recipe
        recipe = dataclasses.replace(recipe, pinned=True)
    if spec:  # a model's recipe search and its seeds in one shard: the seeds need the search's choice
        cells = cluster_shard(cells, spec, (lambda c: c.setting_key) if searches(cells, recipe) else None)
        print(f"shard {spec[0]}/{spec[1]}: {len(cells)} of {len(exp.cells)} cells", flush=True)
        if not cells:
            return 0
    tags = {}
    if tuned:
        from suite.tuning.storage import storage_url
        from suite.tuning.study import tuned_cells

        uri = tracking_uri(tracking, exp.stores.tracking_uri)
        cells, tags = tuned_cells(cells, exp.name, storage_url(storage, uri, exp.stores.optuna_storage))
    pack = choose_packing(cells, jobs)
    if dry_run:
        from suite.dryrun import dry_run as plan

        return plan(cells, tracking_uri(tracking, exp.stores.tracking_uri), experiment or f"rnnbench-{exp.name}",
                    pack, force, reuse_stale, recipe)
    store = store_for(exp, tracking, experiment)
    log_plan(store, exp.matrix, exp.cells)
    print(f"{len(cells)} cells: {len({c.model for c in cells})} models × "
          f"{len({(c.task, c.seq_len) for c in cells})} task settings × {len({c.seed for c in cells})} seeds"
          + f" · {'tuned' if tuned else recipe_line(cells, recipe)}", flush=True)
    settings = Settings(exp.name, force=force, tags=tags, reuse_stale=reuse_stale, packing=pack)
    searched = search(store, cells, recipe, settings)
    started = time.perf_counter()
    outcomes = run_matrix(store, searched.cells, dataclasses.replace(settings, tags={**tags, **searched.tags}))
    scored_s = time.perf_counter() - started
    print(results_table(outcomes))
    print(overall_block(outcomes, exp.banner, searched.found, recipe))
    failed = [o for o in outcomes if o.status == "FAILED"]
    skipped = sum(o.status == "SKIPPED" for o in outcomes)
    print(f"\n{len(outcomes) - len(failed) - skipped} trained, {skipped} skipped (already finished), "
          f"{len(failed)} failed" + (f"; {line}" if (line := cost_line(searched, scored_s)) else ""))
    for o in failed:
        print(f"  FAILED {o.cell.label}: {o.error} (run {o.run_id})")
    lost = [o for o in searched.outcomes if o.status == "FAILED"]  # a point that diverges is an answer, no failure
    if lost:
        print(f"{len(lost)} recipe-search run(s) failed or diverged, each scoring 0 for its point: " + "; ".join(
            f"{o.cell.model} {o.cell.task} T={o.cell.seq_len} {label(json.loads(o.tags['recipe_point']))}: {o.error}"
            for o in lost[:5]) + (f"; and {len(lost) - 5} more" if len(lost) > 5 else ""))
    if exp.register:  # the profile asks for each model x task's best run in the Model Registry
        from suite.register import register

        register(exp.name, [store.experiment], store.uri)
    where = ui_url(store.uri)
    print(f"Browse the runs: {'`make ui` → ' if where == DEFAULT_UI else ''}{where}/#/experiments/"
          f"{store.experiment_id}?workflowType=machine_learning (experiment {store.experiment})")
    return 1 if failed else 0


def recipe_line(cells: list, recipe) -> str:
    """How the cells' learning rates are chosen, in a few words."""
    from suite.recipe import grid, label

    searched = sorted({c.model for c in cells if grid(recipe, c.model)})
    if not searched:
        lrs = sorted({c.train.lr for c in cells})
        return f"one shared learning rate ({lrs[0]:g})" if len(lrs) == 1 else "pinned recipes"
    points = grid(recipe, searched[0])
    return (f"each model at its own recipe: {len(points)} points ({label(points[0])} … {label(points[-1])}) "
            f"searched on seed {recipe.seed}" + (f" ({len(searched)} of {len({c.model for c in cells})} models)"
                                                  if len(searched) < len({c.model for c in cells}) else ""))
