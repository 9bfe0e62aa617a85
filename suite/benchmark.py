"""The `run` and `benchmark` commands: cells of an experiment into MLflow, then the results table."""
from __future__ import annotations

import sys

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
    from suite.stores import DEFAULT_UI, tracking_uri, ui_url
    from suite.tracking import log_plan

    cells, spec = exp.cells, parse_shard(shard)
    if spec:
        cells = cluster_shard(cells, spec)
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
                    pack, force, reuse_stale)
    store = store_for(exp, tracking, experiment)
    log_plan(store, exp.matrix, exp.cells)
    print(f"{len(cells)} cells: {len({c.model for c in cells})} models × "
          f"{len({(c.task, c.seq_len) for c in cells})} task settings × {len({c.seed for c in cells})} seeds"
          + (" · tuned" if tuned else ""), flush=True)
    outcomes = run_matrix(store, cells, Settings(exp.name, force=force, tags=tags, reuse_stale=reuse_stale,
                                                 packing=pack))
    print(results_table(outcomes))
    print(overall_block(outcomes, exp.banner))
    failed = [o for o in outcomes if o.status == "FAILED"]
    skipped = sum(o.status == "SKIPPED" for o in outcomes)
    print(f"\n{len(outcomes) - len(failed) - skipped} trained, {skipped} skipped (already finished), "
          f"{len(failed)} failed")
    for o in failed:
        print(f"  FAILED {o.cell.label}: {o.error} (run {o.run_id})")
    if exp.register:  # the profile asks for each model x task's best run in the Model Registry
        from suite.register import register

        register(exp.name, [store.experiment], store.uri)
    where = ui_url(store.uri)
    print(f"Browse the runs: {'`make ui` → ' if where == DEFAULT_UI else ''}{where}/#/experiments/"
          f"{store.experiment_id}?workflowType=machine_learning (experiment {store.experiment})")
    return 1 if failed else 0
