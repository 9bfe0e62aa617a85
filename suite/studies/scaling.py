"""How each model's cost grows with the sequence length: `rnnbench speed --lengths 64,256,1024`.

For every model of the experiment on its first task shape, at each length T: seconds per training step (the
hand-written loop of suite/studies/speed.py: forward, backward, clipping and the optimizer step; the median of
interleaved repeats) and the memory a step keeps for backward (on a GPU also the peak allocated), then the slope
of log(step seconds) against log(T) per model, fitted by least squares: measured, not assumed (a recurrence that
steps through time is ~1, attention's T x T ~2 once it dominates, a parallel scan in between).
"""
from __future__ import annotations

import statistics

from suite.console import aligned
from suite.errors import UserError, one_line
from suite.overall import slope
from suite.provenance import environment
from suite.roles import TAG, Role
from suite.studies.speed import peak_cuda_mb, raw_throughput, saved_activation_mb
from suite.tracking import log_metrics, open_run
from suite.train import device_for


def step_seconds(cell, repeats: int, target_s: float = 0.5) -> float:
    """Median seconds per training step over `repeats` measurements of about target_s each."""
    probe = raw_throughput(cell, 2, 1)["samples_per_s"]
    steps = max(3, min(200, round(target_s * probe / cell.train.batch_size)))
    rates = [raw_throughput(cell, steps, 2)["samples_per_s"] for _ in range(repeats)]
    return cell.train.batch_size / statistics.median(rates)


def scaling(exp, lengths: list[int], repeats: int = 3, tracking: str | None = None,
            experiment: str | None = None) -> int:
    """Every model at every length: one run each (role scaling), then the table with each model's slope; 1 when a
    model could not be measured at some length (the others still are)."""
    from suite.benchmark import store_for

    if repeats < 1:
        raise UserError("--repeats: needs at least 1")
    task = exp.cells[0].task
    if not exp.cells[0].make_task().has_length():
        raise UserError(f"--lengths: {task} has a fixed length; choose a task with a seq_len (e.g. --tasks adding)")
    base = list({c.model: c for c in exp.first_seed() if c.task == task}.values())
    cells = {(c.model, t): c.overridden({"task.seq_len": t}, f"--lengths {t}") for c in base for t in lengths}
    store = store_for(exp, tracking, experiment or "rnnbench-speed")
    print(f"{len(base)} models × T={lengths} on {task}, {repeats} repeats each (medians)", flush=True)
    env, figures, failed = environment(), {}, []
    for i, ((model, t), cell) in enumerate(cells.items(), 1):
        try:
            step, mb = step_seconds(cell, repeats), saved_activation_mb(cell)
            peak = peak_cuda_mb(cell) if device_for(cell) == "cuda" else None
        except UserError:
            raise
        except Exception as e:  # one model's failure (e.g. out of memory at the longest T) does not stop the others
            failed.append(f"FAILED {model} at T={t}: {one_line(e)[:300]}")
            print(f"[{i}/{len(cells)}] {failed[-1]}", flush=True)
            continue
        figures[(model, t)] = (step, mb)
        print(f"[{i}/{len(cells)}] {model} T={t}: {step * 1000:.1f} ms per step, {mb:.1f} MB for backward", flush=True)
        tags = {TAG: Role.SCALING, "model": model, "task": task, "seq_len": str(t), "device": device_for(cell),
                "batch_size": str(cell.train.batch_size), "lengths": ",".join(map(str, lengths)),
                "config_hash": cell.config_hash, **env}
        with open_run(store, f"scaling-{model}-{task}-T{t}", tags, heartbeat=False) as run:
            log_metrics(store.client, run.id, {"step_s": step, "activation_mb": mb, "peak_mem_mb": peak})
    print(scaling_table(figures, lengths))
    print(f"Recorded in MLflow experiment {store.experiment} (role {Role.SCALING}); the report shows it")
    for line in failed:
        print(f"  {line}")
    return 1 if failed else 0


def scaling_table(figures: dict[tuple[str, int], tuple[float, float]], lengths: list[int]) -> str:
    """ms per step at each T, the time slope, and the memory slope, a row per model."""
    models = list(dict.fromkeys(m for m, _ in figures))
    rows = []
    for m in models:
        steps = [figures.get((m, t), (None, None))[0] for t in lengths]
        mbs = [figures.get((m, t), (None, None))[1] for t in lengths]
        s, ms = slope(lengths, steps), slope(lengths, mbs)
        rows.append([m, *(f"{v * 1000:.1f}" if v else "-" for v in steps), "-" if s is None else f"{s:.2f}",
                     "-" if ms is None else f"{ms:.2f}"])
    header = ["model", *(f"ms/step T={t}" for t in lengths), "time slope", "memory slope"]
    return aligned(header, rows, left={0})
