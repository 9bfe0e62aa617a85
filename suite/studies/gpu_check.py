"""The GPU check: what the CUDA path really does, written to one summary file (`make gpu-check`).

    python -m suite.studies.gpu_check --device cuda --out DIR     (CI runs it with --device cpu --quick)

It needs torch, Lightning, pydantic, PyYAML and numpy only (no MLflow, Optuna or the tracking store), so it runs
on a bare GPU machine with the few missing wheels carried along (`make gpu-wheels`). Sections:
1. every model x task at smoke size: trains, tests finite, the fused RNNs on cuDNN (aten::_cudnn_rnn seen by the
   profiler), and bf16 autocast in use (the layers' outputs are bfloat16 under train.precision auto);
2. `rnnbench speed`'s cells: the suite against a hand-written loop, on the device;
3. packing: K processes training the same cell at once against one alone (aggregate samples/s);
4. the full profile's longest cell (copy T=1000) for a few hundred steps, and that cell's full time;
5. the synthetic evaluation sets' checksums on the device against the CPU's;
6. an estimate of the whole full profile on this device, from timing each setting briefly.
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

ROOT = Path(__file__).resolve().parents[2]
SMOKE, FULL = ROOT / "configs/profiles/smoke.yaml", ROOT / "configs/profiles/full.yaml"
SPEED = ROOT / "configs/experiments/speed.yaml"


def cells_of(config: Path, overrides: dict | None = None, **narrow):
    """The cells of an experiment file (narrowed to some models or tasks), with some settings changed
    (Experiment.overridden: config paths as in --set)."""
    from suite.experiment import load_experiment

    exp = load_experiment(None, str(config), announce=None, **narrow)
    return exp.overridden(overrides, "gpu_check") if overrides else exp.cells


def on_device(cell, device: str, **train):
    """The cell on `device` (precision auto: bf16-mixed on CUDA), with other train settings if given."""
    return dataclasses.replace(cell, train=dataclasses.replace(cell.train, device=device, **train))


def smoke_row(cell) -> dict:
    """Train and test one cell; which kernels ran and in what dtype."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from suite.train import Training, precision_for

    training = Training(cell)
    dtypes = set()
    hooks = [m.register_forward_hook(lambda m, i, o: dtypes.add(str((o[0] if isinstance(o, tuple) else o).dtype)))
             for m in training.module.modules() if isinstance(m, torch.nn.Linear | torch.nn.RNNBase)]
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if training.device == "cuda" else [])
    started = time.perf_counter()
    with profile(activities=activities) as prof:
        training.fit()
    seconds = time.perf_counter() - started
    for h in hooks:
        h.remove()
    ops = {e.key for e in prof.key_averages()}
    metrics = training.evaluate()
    fused = any(isinstance(m, torch.nn.RNNBase) for m in training.module.modules())
    return {"cell": cell.label, "precision": precision_for(cell, training.device), "dtypes": sorted(dtypes),
            "bf16": "torch.bfloat16" in dtypes, "fused_rnn": fused, "cudnn_rnn": "aten::_cudnn_rnn" in ops,
            "test_loss": metrics["test_loss"], "finite": math.isfinite(metrics["test_loss"]),
            "samples_per_s": metrics["train_samples_per_s"], "seconds": seconds}


def smoke_ok(row: dict, device: str) -> bool:
    if not row["finite"]:
        return False
    if device != "cuda":
        return not row["bf16"]
    return row["bf16"] and (row["cudnn_rnn"] or not row["fused_rnn"])  # no silent fallback to slower kernels


def _train_steps(cell, steps: int, queue=None) -> dict:
    """Train `cell` for `steps` optimizer steps; samples/s (warm-up excluded) and wall seconds."""
    from suite.train import Training, init_torch, trainer_for

    init_torch()
    calls = max(2, steps // cell.train.steps_per_call)
    short = dataclasses.replace(cell, train=dataclasses.replace(
        cell.train, epochs=1, steps_per_epoch=calls * cell.train.steps_per_call, gradflow=False))
    training = Training(short)
    started = time.perf_counter()
    trainer_for(short, training.device, [training.speed], False, limit_val_batches=0).fit(
        training.module, training.train_batches)
    result = {"samples_per_s": training.speed.samples_per_s, "seconds": time.perf_counter() - started,
              "steps": calls * cell.train.steps_per_call}
    if queue is not None:
        queue.put(result)
    return result


def packing_row(cell, jobs: int, steps: int) -> dict:
    """One process alone, then `jobs` processes at once on the same device, each with its own seed."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")

    def together(k):
        queue = ctx.Queue()
        procs = [ctx.Process(target=_train_steps, args=(dataclasses.replace(cell, seed=i), steps, queue))
                 for i in range(k)]
        started = time.perf_counter()
        for p in procs:
            p.start()
        results = [queue.get(timeout=900) for _ in procs]
        for p in procs:
            p.join()
        return sum(r["samples_per_s"] for r in results), time.perf_counter() - started

    alone, alone_s = together(1)
    packed, packed_s = together(jobs)
    return {"cell": cell.label, "jobs": jobs, "alone_samples_per_s": alone, "packed_samples_per_s": packed,
            "gain": packed / alone, "alone_wall_s": alone_s, "packed_wall_s": packed_s}


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


def full_estimate(device: str, budget_s: float, jobs: int) -> dict:
    """Time each setting of the full profile briefly (until budget_s), price the rest by cost, then pack."""
    from suite.eta import Clock, estimate, makespan

    cells = [on_device(c, device) for c in cells_of(FULL)]
    settings = {c.setting_key: c for c in cells}
    clock, timed, started = Clock(1), {}, time.perf_counter()
    for key, cell in settings.items():
        if time.perf_counter() - started > budget_s:
            break
        timed[key] = estimate(cell, os.cpu_count() or 1)
        clock.record(cell, timed[key])
    each = [timed.get(c.setting_key) or clock.eta([c], {}) for c in cells]
    return {"cells": len(cells), "settings": len(settings), "settings_timed": len(timed),
            "one_at_a_time_h": sum(each) / 3600, f"packed_{jobs}_h": makespan(each, jobs) / 3600}


def say(text: str):
    print(text, flush=True)


def run(device: str, out: Path, quick: bool) -> int:
    import torch

    from suite.packing import PER_GPU
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
    summary = {"environment": env}
    say(f"gpu_check on {device}: {env}")
    narrow = {"models": ["rnn", "lstm"], "tasks": ["adding", "copy"]} if quick else {}
    summary["smoke"] = [smoke_row(on_device(c, device)) for c in cells_of(SMOKE, **narrow)]
    for r in summary["smoke"]:
        r["ok"] = smoke_ok(r, device)
        say(f"  smoke {r['cell']}: {'ok' if r['ok'] else 'FAILED'} · {r['precision']} · cudnn {r['cudnn_rnn']} · "
            f"{r['samples_per_s']:.0f} samples/s")
    speed_cells = [on_device(c, device) for c in cells_of(SPEED, **({"models": ["lstm"], "tasks": ["adding"]} if quick
                                                               else {}))]
    rows = [measure(c, repeats=1 if quick else 3) for c in speed_cells]
    summary["speed"] = [{"cell": r.cell.label, **r.metrics()} for r in rows]
    say(speed_table(rows))
    base = on_device(cells_of(FULL, {"task.seq_len": 200}, models=["lstm"], tasks=["adding"])[0], device)
    summary["packing"] = packing_row(base, PER_GPU if device == "cuda" else 2, 16 if quick else 400)
    say(f"  packing: {summary['packing']}")
    long = on_device(cells_of(FULL, {"task.seq_len": 50 if quick else 1000}, models=["lstm"], tasks=["copy"])[0],
                     device)
    summary["long_cell"] = long_row(long, 16 if quick else 300)
    say(f"  long cell: {summary['long_cell']}")
    summary["checksums"] = checksum_rows(device)
    summary["full_profile"] = full_estimate(device, 5 if quick else 240, PER_GPU)
    say(f"  full profile: {summary['full_profile']}")
    ok = all(r["ok"] for r in summary["smoke"]) and all(r["same"] for r in summary["checksums"])
    summary["ok"] = ok
    (out / "gpu_check.json").write_text(json.dumps(summary, indent=1, default=str))
    (out / "gpu_check.md").write_text(markdown(summary))
    say(f"wrote {out / 'gpu_check.md'} and gpu_check.json: {'all checks passed' if ok else 'SOME CHECKS FAILED'}")
    return 0 if ok else 1


def markdown(s: dict) -> str:
    lines = [f"# GPU check · {s['environment']}", "", "| cell | ok | precision | dtypes | cuDNN RNN | samples/s |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['cell']} | {r['ok']} | {r['precision']} | {', '.join(r['dtypes'])} | "
              f"{r['cudnn_rnn'] if r['fused_rnn'] else 'n/a'} | {r['samples_per_s']:.0f} |" for r in s["smoke"]]
    lines += ["", "| speed cell | suite samples/s | raw samples/s | suite/raw |", "|---|---|---|---|"]
    lines += [f"| {r['cell']} | {r['suite_samples_per_s']:.0f} | {r['raw_samples_per_s']:.0f} | "
              f"{r['suite_vs_raw']:.3f} |" for r in s["speed"]]
    p, lc, f = s["packing"], s["long_cell"], s["full_profile"]
    lines += ["", f"Packing {p['cell']}: {p['jobs']} at once {p['packed_samples_per_s']:.0f} samples/s against "
              f"{p['alone_samples_per_s']:.0f} alone: {p['gain']:.2f}x",
              f"Long cell {lc['cell']}: {lc['s_per_step'] * 1000:.1f} ms a step; its {lc['planned_steps']} steps "
              f"~{lc['training_estimate_s'] / 60:.1f} min",
              "Checksums (device = CPU): " + ", ".join(f"{r['task']} {r['same']}" for r in s["checksums"]),
              f"Full profile: {f['cells']} cells ({f['settings_timed']} of {f['settings']} settings timed): "
              + ", ".join(f"{k} {v:.2f}" for k, v in f.items() if k.endswith("_h")), ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="gpu_check", description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--out", default="gpu-check", help="folder for gpu_check.md and gpu_check.json")
    p.add_argument("--quick", action="store_true", help="a few cells and steps (CI runs it so on the CPU)")
    a = p.parse_args(argv)
    return run(a.device, Path(a.out), a.quick)


if __name__ == "__main__":
    sys.exit(main())
