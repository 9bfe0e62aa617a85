"""The GPU check's parts (suite/studies/gpu_check.py runs them): the cells it trains, its precision rows per fused
family, the ways to fill one GPU, the full profile's hours under each way, and its markdown summary."""
from __future__ import annotations

import dataclasses
import math
from functools import partial
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
    """The cell on `device` (its own precision unless given), with other train settings if given."""
    return dataclasses.replace(cell, train=dataclasses.replace(cell.train, device=device, **train))


FAMILIES = ("rnn", "lstm", "gru")  # the fused models, one for each of cuDNN's RNN kernel families


def precision_rows(cells: list, device: str, steps: int) -> list[dict]:
    """For each fused family, each precision: what its kernel computes in, and samples/s on each cell."""
    from suite.errors import one_line
    from suite.models import MODELS
    from suite.precision import DTYPES, auto, kernel_dtypes
    from suite.studies import fill

    rows = []
    for model in dict.fromkeys(c.model for c in cells):
        auto_pick = auto(model, device)
        rnn = MODELS[model](4, MODELS[model].Config(hidden_size=16)).rnn.to(device)
        for precision in DTYPES:
            speeds = {}
            try:  # oneDNN has no bfloat16 LSTM on a CPU without AVX512-BF16 or AMX: a row with the error
                kernel, error = kernel_dtypes(rnn, precision, device), None
            except RuntimeError as exc:
                kernel, error = dict.fromkeys(("kernel", "computes", "input", "weight", "output")), one_line(exc)
            if error is None:
                try:
                    speeds = {c.label: fill.alone(on_device(c, device, precision=precision), device, steps)[
                        "samples_per_s"] for c in cells if c.model == model}
                except RuntimeError as exc:  # e.g. oneDNN has no float16 LSTM training kernel on many CPUs
                    error = one_line(exc)
            rows.append({"model": model, "precision": precision, "auto": precision == auto_pick, **kernel,
                         "computes_as_claimed": kernel["computes"] == DTYPES[precision], "samples_per_s": speeds,
                         "error": error})
    for model in dict.fromkeys(r["model"] for r in rows):  # the fastest precision that computes what it says
        honest = [r for r in rows if r["model"] == model and r["computes_as_claimed"] and r["samples_per_s"]]
        best = max(honest, key=lambda r: _geomean(r["samples_per_s"].values()), default=None)
        for r in honest:
            r["fastest"] = r is best
    return rows


def _geomean(values) -> float:
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values))


def full_cell(model: str, task: str, seq_len: int, device: str):
    """The full profile's first cell of `model` on `task` at `seq_len`, on the device."""
    return on_device(cells_of(FULL, {"task.seq_len": seq_len}, models=[model], tasks=[task])[0], device)


def like(cell, model: str, device: str):
    """The full profile's cell of `model` at this cell's task and length, on the device."""
    return full_cell(model, cell.task, cell.seq_len, device)


def fill_rows(short, long, device: str, k: int, seeds: int, steps: int) -> list[dict]:
    """The ways to fill one GPU, for a short and a long cell: alone, K processes, K streams, S seeds vmapped (the
    LRU; a stepped RNN), S seeds block-diagonal in one fused LSTM. `gain`: aggregate samples/s against alone. A way
    that fails here is a row with its error in one line, and the others still run."""
    from suite.errors import one_line
    from suite.studies import fill

    rows, few = [], max(2, steps // 4)  # a stepped recurrence launches T times the kernels: fewer steps do
    for cell in (short, long):
        lstm, lru, rnn = (like(cell, model, device) for model in ("lstm", "lru", "rnn"))
        groups = [(lstm, partial(fill.alone, lstm, device, steps), [
                      (f"{k} processes", partial(fill.processes, lstm, device, k, steps)),
                      (f"{k} streams", partial(fill.streams, lstm, device, k, steps)),
                      (f"{seeds} seeds block-diagonal", partial(fill.block_diagonal, lstm, device, seeds, steps))]),
                  (lru, partial(fill.alone, lru, device, steps), [
                      (f"{seeds} seeds vmapped", partial(fill.vmapped, lru, device, seeds, steps))]),
                  (rnn, partial(fill.alone, rnn, device, few, stepped=True), [
                      (f"{seeds} seeds vmapped (stepped)", partial(fill.vmapped, rnn, device, seeds, few,
                                                                   stepped=True))])]
        for of, alone_of, ways in groups:
            alone = None
            for way, measure in [("alone", alone_of), *ways]:
                try:
                    r = measure()
                except Exception as exc:  # noqa: BLE001 (one way's failure is a finding, not the check's end)
                    rows.append({"cell": of.label, "way": way, "length": cell.seq_len, "error": one_line(exc)})
                    if alone is None:
                        break  # no baseline: the group's other ways would have nothing to be against
                    continue
                alone = alone or r
                rows.append({**r, "length": cell.seq_len, "gain": r["samples_per_s"] / alone["samples_per_s"]})
    return rows


def way_estimates(each: list, rows: list[dict]) -> dict:
    """The full profile's hours one run at a time under each way (`each`: (cell, seconds) pairs): each run's time
    divided by the way's gain
    measured at the nearer of the two lengths (log scale), for the models the way applies to (processes and
    streams: every model; vmap: the models written from tensor operations, at the LRU's gain; block-diagonal: the
    fused ones, at the LSTM's); other cells at their own time. `best`: each cell under its best way."""
    from suite.precision import fused_modes

    lengths = sorted({r["length"] for r in rows})

    def gain(way_prefix: str, cell) -> float:
        near = min(lengths, key=lambda t: abs(math.log(t) - math.log(max(cell.seq_len, 1))))
        fused = bool(fused_modes(cell.model))
        applies = {"processes": True, "streams": True, "seeds vmapped": not fused, "seeds block-diagonal": fused}
        hits = [r["gain"] for r in rows if r["length"] == near and r["way"].endswith(way_prefix)
                and "(stepped)" not in r["way"] and "gain" in r]
        return hits[0] if hits and applies[way_prefix] else 1.0

    ways = ("processes", "streams", "seeds vmapped", "seeds block-diagonal")
    out = {way: sum(s / gain(way, c) for c, s in each) / 3600 for way in ways}
    out["best"] = sum(s / max(1.0, *(gain(w, c) for w in ways)) for c, s in each) / 3600
    return out


def kernels_text(row: dict) -> str:
    return ", ".join(f"{k['kernel']} {k['computes']}" for k in row["kernels"]) or "no fused RNN"


def markdown(s: dict) -> str:
    lines = [f"# GPU check · {s['environment']}", ""]
    if "smoke" in s:
        lines += ["| cell | ok | precision | computes in | fused RNN kernel | samples/s |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['cell']} | {r['ok']} | {r['precision']} | {r['computes']} | {kernels_text(r)} | "
                  f"{r['samples_per_s']:.0f} |" for r in s["smoke"]]
    if "precision" in s:
        lines += ["", "| fused model | precision | auto | kernel | input | weight | output | samples/s (short, long) "
                  "| computes as claimed | fastest |", "|---|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['precision']} | {r['auto']} | {r['kernel']} | {r['input']} | {r['weight']} | "
                  f"{r['output']} | {', '.join(f'{v:.0f}' for v in r['samples_per_s'].values()) or 'fails'} | "
                  f"{r['computes_as_claimed']} | {r.get('fastest', False)} |" for r in s["precision"]]
    if "speed" in s:
        lines += ["", "| speed cell | suite samples/s | raw samples/s | suite/raw |", "|---|---|---|---|"]
        lines += [f"| {r['cell']} | {r['suite_samples_per_s']:.0f} | {r['raw_samples_per_s']:.0f} | "
                  f"{r['suite_vs_raw']:.3f} |" for r in s["speed"]]
    if "fill" in s or "graph" in s:
        lines += ["", "| cell | way | networks | aggregate samples/s | against alone | wall s |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['cell']} | {r['way']} | | fails: {r['error']} | | |" if "error" in r else
                  f"| {r['cell']} | {r['way']} | {r['models']} | {r['samples_per_s']:.0f} | "
                  + (f"{r['gain']:.2f}x" if "gain" in r else "") + f" | {r['wall_s']:.2f} |"
                  for r in (*s.get("fill", ()), *s.get("graph", ()))]
    lines.append("")
    if "long" in s:
        lc = s["long"]
        lines.append(f"Long cell {lc['cell']}: {lc['s_per_step'] * 1000:.1f} ms a step; its {lc['planned_steps']} "
                     f"steps ~{lc['training_estimate_s'] / 60:.1f} min")
    if "checksums" in s:
        lines.append("Checksums (device = CPU): " + ", ".join(f"{r['task']} {r['same']}" for r in s["checksums"]))
    if "estimate" in s:
        f = s["estimate"]
        lines.append(f"Full profile: {f['cells']} cells and {f.get('search_runs', 0)} recipe-search runs "
                     f"({f['settings_timed']} of {f['settings']} settings timed): "
                     + ", ".join(f"{k} {v:.2f}" for k, v in f.items() if k.endswith("_h")))
        if "under_each_way" in f:
            lines.append("Full profile one cell at a time under each way (h): "
                         + ", ".join(f"{k} {v:.2f}" for k, v in f["under_each_way"].items()))
    lines += [f"Seconds per section: {s['seconds']}"]
    lines += [f"Section {name} FAILED: {why}" for name, why in s.get("failed", {}).items()] + [""]
    return "\n".join(lines)
