"""The dependency horizon: the longest length a model solves, with every shorter one solved too.

`rnnbench horizon` trains every model at every length of a ladder under one budget, as nested runs of
one sweep run that records each model's horizon.
"""
from __future__ import annotations

import dataclasses
import math
import tempfile

from suite.config import Cell, HorizonConfig
from suite.errors import UserError
from suite.roles import TAG, Role


def horizon(solved: dict[int, list[bool]], min_share: float = HorizonConfig.min_share) -> int | None:
    """Longest T of the ladder solved in at least `min_share` of its seeds, every shorter T too.

    `solved` maps each length to one flag per seed. None when even the shortest length is not solved.
    A length solved after an unsolved shorter one does not count: the horizon is where solving stops.
    """
    best = None
    for length in sorted(solved):
        runs = solved[length]
        if not runs or sum(runs) / len(runs) < min_share:
            break
        best = length
    return best


def swept_tasks(exp, task: str | None, lengths) -> list[str]:
    """The task named, else each task of the experiment that its `horizon:` gives a ladder, in that order."""
    present = {c.task for c in exp.cells}
    tasks = [task] if task else [t for t in exp.horizon.ladders if t in present]
    if not tasks or (lengths and len(tasks) > 1):
        raise UserError("--task: " + ("--lengths is one task's ladder; name the task" if tasks else
                                      "the profile has no horizon: ladder; name a task, e.g. --task copy"))
    return tasks


def sweep_cells(cells: list[Cell], cfg: HorizonConfig, ladder: list[int]) -> list[Cell]:
    """Every model at every length of the ladder and every seed, under the sweep's budget: the experiment's
    cells of the task (one per model) with their length, seed and budget changed (Cell.overridden).

    Each run is also tested at twice its length (length generalisation: train at T, test at 2T).
    """
    models = list({c.model: c for c in cells}.values())  # one base cell per model
    out = []
    for length in ladder:
        for seed in range(cfg.seeds):
            for base in models:
                values = {"task.seq_len": length, "train.eval_seq_lens": [2 * length], "seed": seed}
                if cfg.budget_steps:  # the same optimizer steps for every model and length (whole epochs)
                    values["train.epochs"] = math.ceil(cfg.budget_steps / base.train.batches_per_epoch)
                if cfg.budget_minutes:
                    values["train.max_minutes"] = cfg.budget_minutes
                out.append(base.overridden(values, f"horizon T={length}"))
    return out


def summarise(outcomes, min_share: float) -> tuple[dict, dict, dict, dict]:
    """(horizon by model, solved share by (model, T), test_vs_chance values and those at 2T by (model, T))."""
    from collections import defaultdict

    solved, ratio, at_2t = defaultdict(list), defaultdict(list), defaultdict(list)
    for o in outcomes:
        if o.status in ("FINISHED", "SKIPPED") and "solved" in o.metrics:
            key = (o.cell.model, o.cell.seq_len)
            solved[key].append(o.metrics["solved"] == 1)
            ratio[key].append(o.metrics["test_vs_chance"])
            if f"test_vs_chance_at_{2 * o.cell.seq_len}" in o.metrics:
                at_2t[key].append(o.metrics[f"test_vs_chance_at_{2 * o.cell.seq_len}"])
        else:  # a failed run counts as unsolved: it did not solve the length
            solved[(o.cell.model, o.cell.seq_len)].append(False)
    models = dict.fromkeys(o.cell.model for o in outcomes)
    horizons = {m: horizon({T: v for (mm, T), v in solved.items() if mm == m}, min_share) for m in models}
    shares = {k: sum(v) / len(v) for k, v in solved.items()}
    return horizons, shares, dict(ratio), dict(at_2t)


def table(horizons: dict, shares: dict, ratio: dict, at_2t: dict) -> str:
    """Solved share per T, the horizon, then loss/chance trained at T and tested at T -> at 2T."""
    lengths = sorted({T for _, T in shares})
    mean = lambda v: f"{sum(v) / len(v):.2f}" if v else "-"  # noqa: E731
    header = ["model", *(f"T={T}" for T in lengths), "horizon", *(f"loss/chance {T}->{2 * T}" for T in lengths)]
    rows = [[m, *(f"{shares.get((m, T), 0):.2f}" for T in lengths), str(h) if h else "none",
             *(f"{mean(ratio.get((m, T), []))}->{mean(at_2t.get((m, T), []))}" for T in lengths)]
            for m, h in horizons.items()]
    from suite.console import aligned

    return aligned(header, rows, left={0})


def plot(ratio: dict, task: str, path):
    """test_vs_chance against T, a line a model (mean over seeds) with a min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    markers = "osD^vPX*"
    for i, model in enumerate(dict.fromkeys(m for m, _ in ratio)):
        lengths = sorted(T for m, T in ratio if m == model)
        values = [ratio[(model, T)] for T in lengths]
        ax.plot(lengths, [sum(v) / len(v) for v in values], marker=markers[i % len(markers)], label=model)
        ax.fill_between(lengths, [min(v) for v in values], [max(v) for v in values], alpha=0.2)
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="chance").set_gid("chance-line")
    ax.set(xscale="log", xlabel="sequence length T", ylabel="test loss / chance loss",
           title=f"{task}: loss against chance")
    ax.xaxis.set_major_locator(FixedLocator(sorted({T for _, T in ratio})))  # the lengths run, as plain numbers
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def sweep(exp, task: str, lengths=None, seeds=None, budget_steps=None, budget_minutes=None, tracking=None,
          experiment=None, force=False, reuse_stale=False, jobs=(None, None)) -> int:
    """`rnnbench horizon`: the sweep's runs, then its horizons, table and plot on one parent run; 1 when a run
    failed (it counts as unsolved)."""
    from suite.benchmark import store_for
    from suite.config import horizon_config
    from suite.matrix import Settings, run_matrix
    from suite.packing import choose_packing
    from suite.tracking import log_metrics, open_run
    from tasks import TASKS

    if not TASKS[task].has_length():
        raise UserError(f"--task: {task} has a fixed length; a sweep needs a task with a seq_len: "
                        f"{', '.join(t for t, c in TASKS.items() if c.has_length())}")
    try:
        ladder = [int(t) for t in lengths] if lengths else exp.horizon.ladder(task)
    except ValueError:
        raise UserError(f"--lengths: expected comma-separated integers (got {','.join(lengths)})") from None
    if not ladder:
        raise UserError(f"--lengths: {task} has no default ladder; give one, e.g. --lengths 50,100,200")
    given = dataclasses.asdict(exp.horizon) | {"seeds": seeds or exp.horizon.seeds,
                                               "budget_steps": budget_steps or exp.horizon.budget_steps,
                                               "budget_minutes": budget_minutes or exp.horizon.budget_minutes}
    cfg = horizon_config({**{k: v for k, v in given.items() if k != "ladders"}, task: ladder}, "the command line")
    cells = sweep_cells([c for c in exp.cells if c.task == task], cfg, cfg.ladder(task))
    pack = choose_packing(cells, jobs)
    store = store_for(exp, tracking, experiment, family="horizon")
    budget = (f"{cfg.budget_steps} steps" if cfg.budget_steps else f"{cfg.budget_minutes} min" if cfg.budget_minutes
              else f"{cells[0].train.epochs} epochs")
    tags = {TAG: Role.SWEEP, "task": task, "profile": exp.name, "lengths": ",".join(map(str, ladder)),
            "seeds": str(cfg.seeds), "budget": budget}
    print(f"horizon sweep on {task}: {len(cells)} runs (models × T={ladder} × {cfg.seeds} seeds)", flush=True)
    with open_run(store, f"horizon-{task}", tags) as run:
        parent = run.id
        outcomes = run_matrix(store, cells, Settings(
            exp.name, force=force, role=Role.SWEEP_CELL, reuse_stale=reuse_stale, packing=pack,
            tags={c.config_hash: {"mlflow.parentRunId": parent} for c in cells}))
        horizons, shares, ratio, at_2t = summarise(outcomes, cfg.min_share)
        log_metrics(store.client, parent, {f"horizon_{m}": float(h or 0) for m, h in horizons.items()})
        ids = {}  # the runs each share counts, this sweep's or finished before it (resumed, reused)
        for o in outcomes:
            ids.setdefault((o.cell.model, o.cell.seq_len), []).append(o.run_id)
        rows = [{"model": m, "seq_len": T, "solved_share": s, "test_vs_chance": ratio.get((m, T)),
                 "test_vs_chance_at_2T": at_2t.get((m, T)), "runs": ids.get((m, T), [])}
                for (m, T), s in sorted(shares.items())]
        store.client.log_dict(parent, {"horizon": horizons, "solved_share": rows, "min_share": cfg.min_share},
                              "horizon.json")
        with tempfile.TemporaryDirectory() as tmp:
            plot(ratio, task, f"{tmp}/test_vs_chance.png")
            store.client.log_artifact(parent, f"{tmp}/test_vs_chance.png")
    print(f"\nsolved share by length (horizon: longest T solved by >= {cfg.min_share:.0%} of seeds, all shorter too)")
    print(table(horizons, shares, ratio, at_2t))
    print(f"Sweep run {parent} in experiment {store.experiment}: horizon_<model> metrics, horizon.json, "
          "test_vs_chance.png")
    failed = [o for o in outcomes if o.status == "FAILED"]
    for o in failed:
        print(f"  FAILED {o.cell.label}: {o.error} (run {o.run_id})")
    return 1 if failed else 0
