"""The GPU check: what the CUDA path really does, written to one summary file (`make gpu-check`).

    python -m suite.studies.gpu_check --device cuda --out DIR     (CI runs it with --device cpu --quick)

It needs torch, Lightning, pydantic, PyYAML and numpy only (no MLflow, Optuna or the tracking store), so it runs
on a bare GPU machine with the few missing wheels carried along (`make gpu-wheels`). Sections (`--only`):
- smoke: every model x task at smoke size trains and tests finite, every layer computes in the precision the
  cell claims (its Linear outputs at the first step; each fused RNN's kernel input, probed under the same
  precision: suite/precision.py), and on CUDA each fused RNN runs cuDNN's kernel (aten::_cudnn_rnn);
- precision: per fused family (rnn, lstm, gru), each precision: its kernel op and the dtypes of its input, weight
  and output, whether it computes what it says, samples/s on a short and a long cell, which auto picks and which
  was fastest of those that compute what they say; cuDNN's version is in the environment line;
- speed: `rnnbench speed`'s cells, the suite against a hand-written loop, on the device;
- long: the full profile's longest cell (copy T=1000) for a few hundred steps through the Trainer, and its time;
- fill: the ways to fill one GPU (suite/studies/fill.py) for adding T=200 and copy T=1000: alone, K processes,
  K CUDA streams, S seeds vmapped (the LRU; a stepped RNN), S seeds block-diagonal in one fused LSTM;
- graph: a CUDA graph of one training step of a stepped RNN (T=784) replayed, against eager;
- checksums: the synthetic evaluation sets' checksums on the device against the CPU's;
- estimate: the whole full profile on this device from timing each setting briefly, one cell at a time and
  under each way of the fill section.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

from suite.studies.gpu_rows import FULL, SMOKE, SPEED, cells_of, kernels_text, markdown, on_device


def smoke_row(cell) -> dict:
    """Train and test one cell; what its layers computed in (its first step) and what its fused RNN kernels
    computed in and which kernel ran (probed after training, under the same precision)."""
    from torch import nn

    from suite.precision import kernel_dtypes
    from suite.train import Training, precision_for

    training = Training(cell)
    started = time.perf_counter()
    training.fit()
    seconds = time.perf_counter() - started
    metrics = training.evaluate()
    precision = precision_for(cell, training.device)
    kernels = [kernel_dtypes(m, precision, training.device) for m in training.module.modules()
               if isinstance(m, nn.RNNBase)]
    return {"cell": cell.label, "precision": precision, "computes": training.dtypes.summary(),
            "linear": sorted(training.dtypes.seen.get("Linear", ())), "kernels": kernels,
            "test_loss": metrics["test_loss"], "finite": math.isfinite(metrics["test_loss"]),
            "samples_per_s": metrics["train_samples_per_s"], "seconds": seconds}


def smoke_ok(row: dict, device: str) -> bool:
    """Finite, every layer computing in the precision claimed, and on CUDA each fused RNN on cuDNN's kernel (no
    silent fallback to slower kernels)."""
    from suite.precision import DTYPES

    if not row["finite"]:  # a cell that failed or diverged
        return False
    claimed = DTYPES[row["precision"]]
    return (row["linear"] == [claimed] and all(k["computes"] == claimed for k in row["kernels"])
            and (device != "cuda" or all(k["kernel"] == "_cudnn_rnn" for k in row["kernels"])))


def _train_steps(cell, steps: int) -> dict:
    """Train `cell` for `steps` optimizer steps through the Trainer, as a run does; samples/s (warm-up excluded)."""
    from suite.train import Training, trainer_for

    calls = max(2, steps // cell.train.steps_per_call)
    short = dataclasses.replace(cell, train=dataclasses.replace(
        cell.train, epochs=1, steps_per_epoch=calls * cell.train.steps_per_call, gradflow=False))
    training = Training(short)
    trainer_for(short, training.device, [training.speed], False, limit_val_batches=0).fit(
        training.module, training.train_batches)
    return {"samples_per_s": training.speed.samples_per_s, "steps": calls * cell.train.steps_per_call}


def long_row(cell, steps: int) -> dict:
    r = _train_steps(cell, steps)
    total = cell.planned_steps
    per_step = cell.train.batch_size / r["samples_per_s"]
    return {"cell": cell.label, "steps_timed": r["steps"], "s_per_step": per_step, "planned_steps": total,
            "training_estimate_s": total * per_step}


def checksum_rows(device: str) -> list[dict]:
    from tasks import TASKS
    from tasks.base import SyntheticTask, checksum

    rows = []
    for name, cls in TASKS.items():
        if not issubclass(cls, SyntheticTask):
            continue
        task = cls(cls.Config())
        here = checksum(*task.splits(64, 256, device)["test"])
        cpu = checksum(*task.splits(64, 256, "cpu")["test"])
        rows.append({"task": name, "device": here, "cpu": cpu, "same": here == cpu})
    return rows


def full_estimate(device: str, budget_s: float) -> tuple[dict, list]:
    """Time each setting of the full profile briefly (until budget_s), price the rest by cost, with each model's
    recipe search (its rungs' runs: suite/search.py) beside the scored cells: the summary and (cell, seconds) for
    every run."""
    from suite.eta import Clock, estimate
    from suite.experiment import load_experiment
    from suite.search import phases

    exp = load_experiment(None, str(FULL), announce=None)
    planned = [p for phase in phases(exp.cells, exp.recipe, {}) for p in phase]
    cells = [on_device(p.cell, device) for p in planned]
    settings = {c.setting_key: c for c in cells}
    clock, timed, started = Clock(1), {}, time.perf_counter()
    for key, cell in settings.items():
        if time.perf_counter() - started > budget_s:
            break
        timed[key] = estimate(cell, os.cpu_count() or 1)
        clock.record(cell, timed[key])
    each = [(c, p.share * (timed.get(c.setting_key) or clock.eta([c], {}))) for c, p in zip(cells, planned,
                                                                                          strict=True)]
    searching = [p.phase != "scored" for p in planned]
    search = sum(s for (_, s), yes in zip(each, searching, strict=True) if yes)
    return ({"cells": searching.count(False), "search_runs": searching.count(True), "settings": len(settings),
             "settings_timed": len(timed), "one_at_a_time_h": sum(s for _, s in each) / 3600,
             "search_h": search / 3600}, each)


def say(text: str):
    print(text, flush=True)


SECTIONS = ("smoke", "precision", "speed", "long", "fill", "graph", "checksums", "estimate")


def run(device: str, out: Path, quick: bool, only: tuple[str, ...] = SECTIONS) -> int:
    import torch

    from suite.errors import one_line
    from suite.packing import PER_GPU
    from suite.studies import fill, gpu_rows
    from suite.studies.speed import measure
    from suite.studies.speed_rows import speed_table
    from suite.train import init_torch

    init_torch()
    if device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    env = {"torch": torch.__version__, "python": platform.python_version(), "device": device,
           "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
           "cudnn": torch.backends.cudnn.version() if device == "cuda" else None}
    summary, seconds, failed = {"environment": env}, {}, {}
    say(f"gpu_check on {device}: {env}")
    k, seeds, steps = (PER_GPU, 3, 100) if device == "cuda" else (2, 3, 4 if quick else 30)
    short = gpu_rows.full_cell("lstm", "adding", 20 if quick else 200, device)
    long = gpu_rows.full_cell("lstm", "copy", 50 if quick else 1000, device)

    def section(name, work):
        """Run one section; a section that fails is one line in the summary, and the others still run. The
        summary is written after each, so a lease that ends mid-check keeps what was measured."""
        if name not in only:
            return
        started = time.perf_counter()
        say(f"== {name}")
        try:
            summary[name] = work()
        except Exception as exc:  # noqa: BLE001 (the check reports every section it can)
            failed[name] = one_line(exc)
            say(f"  {name} FAILED: {failed[name]}")
        seconds[name] = round(time.perf_counter() - started, 1)
        write()

    def write():
        summary["seconds"], summary["failed"] = seconds, failed
        summary["ok"] = (not failed and all(r["ok"] for r in summary.get("smoke", ()))
                         and all(r["computes_as_claimed"] and not r["error"]
                                 for r in summary.get("precision", ()) if r["auto"])
                         and all(r["same"] for r in summary.get("checksums", ())))
        (out / "gpu_check.json").write_text(json.dumps(summary, indent=1, default=str))
        (out / "gpu_check.md").write_text(markdown(summary))

    def smoke():
        narrow = {"models": ["rnn", "lstm"], "tasks": ["adding", "copy"]} if quick else {}
        rows = []
        for cell in cells_of(SMOKE, **narrow):
            try:
                rows.append(smoke_row(on_device(cell, device)))
            except Exception as exc:  # noqa: BLE001 (a cell that fails is a failed row; the others still run)
                rows.append({"cell": cell.label, "precision": "", "computes": f"fails: {one_line(exc)}", "linear": [],
                             "kernels": [], "finite": False, "samples_per_s": 0.0, "test_loss": None})
        for r in rows:
            r["ok"] = smoke_ok(r, device)
            say(f"  {r['cell']}: {'ok' if r['ok'] else 'FAILED'} · {r['precision']} · {r['computes']} · "
                f"{kernels_text(r)} · {r['samples_per_s']:.0f} samples/s")
        return rows

    def precision():
        models = ["lstm"] if quick else list(gpu_rows.FAMILIES)
        cells = [gpu_rows.like(c, m, device) for m in models for c in (short, long)]
        rows = gpu_rows.precision_rows(cells, device, steps)
        for r in rows:
            say(f"  {r['model']} {r['precision']}{' (auto)' if r['auto'] else ''}: kernel {r['kernel']} · input "
                f"{r['input']} · weight {r['weight']} · output {r['output']}"
                + "".join(f" · {v:.0f} samples/s" for v in r["samples_per_s"].values())
                + (f" · training fails: {r['error']}" if r["error"] else "")
                + (" · fastest that computes as claimed" if r.get("fastest") else "")
                + ("" if r["computes_as_claimed"] else f" · computes {r['computes']}, not what it says"))
        return rows

    def speed():
        narrow = {"models": ["lstm"], "tasks": ["adding"]} if quick else {}
        rows = [measure(on_device(c, device), repeats=1 if quick else 3) for c in cells_of(SPEED, **narrow)]
        say(speed_table(rows))
        return [{"cell": r.cell.label, **r.metrics()} for r in rows]

    def long_cell():
        row = long_row(long, 16 if quick else 300)
        say(f"  {row}")
        return row

    def fill_ways():
        rows = gpu_rows.fill_rows(short, long, device, k, seeds, steps)
        for r in rows:
            say(f"  {r['cell']} · {r['way']}: " + (f"fails: {r['error']}" if "error" in r else
                f"{r['samples_per_s']:.0f} samples/s ({r['gain']:.2f}x), {r['wall_s']:.2f} s"))
        return rows

    def graph():
        cell = gpu_rows.full_cell("rnn", "adding", 50 if quick else 784, device)
        rows = fill.graphed(cell, device, max(2, steps // 4))
        for r in rows:
            say(f"  {r['cell']} · {r['way']}: {r['samples_per_s']:.0f} samples/s, {r['wall_s']:.2f} s")
        if device != "cuda":
            say("  CUDA graph: needs CUDA (eager only here)")
        return rows

    def estimate():
        result, each = full_estimate(device, 5 if quick else 120)
        if "fill" in summary:
            result["under_each_way"] = gpu_rows.way_estimates(each, summary["fill"])
        say(f"  {result}")
        return result

    for name, work in zip(SECTIONS, (smoke, precision, speed, long_cell, fill_ways, graph,
                                     lambda: checksum_rows(device), estimate), strict=True):
        section(name, work)
    write()
    ok = summary["ok"]
    say(f"wrote {out / 'gpu_check.md'} and gpu_check.json ({seconds}): "
        f"{'all checks passed' if ok else 'SOME CHECKS FAILED'}")
    return 0 if ok else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="gpu_check", description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--out", default="gpu-check", help="folder for gpu_check.md and gpu_check.json")
    p.add_argument("--quick", action="store_true", help="a few cells and steps (CI runs it so on the CPU)")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"the sections to run, comma-separated (default all: {','.join(SECTIONS)})")
    a = p.parse_args(argv)
    only = tuple(x.strip() for x in a.only.split(",") if x.strip())
    unknown = [x for x in only if x not in SECTIONS]
    if unknown:
        print(f"gpu_check: --only: unknown section {', '.join(unknown)}; choose from {','.join(SECTIONS)}",
              file=sys.stderr)
        return 2
    return run(a.device, Path(a.out), a.quick, only)


if __name__ == "__main__":
    sys.exit(main())
