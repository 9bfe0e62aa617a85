"""The speed harness: the suite's real training path against a hand-written PyTorch loop, side by side.

For each model x task shape, interleaved repeats measure training samples/s (forward, backward, clip,
optimizer step; warm-up excluded) of (a) the LightningModule under the Trainer with the task's own
batches and (b) a plain ("raw") loop over the same model, batches and optimizer; plus the fused kernel
(or the parallel scan, the convolution, the chunked form) against the same recurrence stepped in Python (the
model's stepped(), else its unroll/readout), attn_rnn against its base RNN, the
share of a step spent making data, the memory a step holds for backward, and optionally torch.compile on
against off.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import time

import torch
import torch.nn.functional as F

from suite.config import Cell
from suite.errors import UserError, one_line
from suite.precision import autocast
from suite.provenance import environment
from suite.roles import TAG, Role
from suite.studies.speed_rows import SpeedRow, attach_attn_ratios, median, speed_table
from suite.tracking import log_metrics, open_run
from suite.train import assemble, device_for, precision_for, trainer_for


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def hand_loss(out, y, output_kind: str):
    """The loss written out by hand, as a user's own script would (tasks/base.py's table is not used on purpose:
    the raw loop is an independent baseline, and same_first_loss checks both compute the same)."""
    if output_kind == "regress_last":
        return F.mse_loss(out.float(), y)
    if output_kind == "class_every":
        return F.cross_entropy(out.float().reshape(-1, out.shape[-1]), y.reshape(-1))
    return F.cross_entropy(out.float(), y)


def raw_throughput(cell: Cell, steps: int, warmup: int, backbone=None, compile: bool = False) -> dict:
    """Plain PyTorch: the same model, batches and optimizer, no Lightning. Returns samples/s and facts."""
    device = device_for(cell)
    task, train, _, _, module = assemble(cell, device)
    net = module.net.to(device)
    if backbone is not None:  # e.g. the stepped recurrence, same weights
        net.backbone = backbone(net.backbone).to(device)
    opt = module.configure_optimizers()
    params = list(net.parameters())
    step_fn = torch.compile(net) if compile else net
    precision = precision_for(cell, device)
    scaler = torch.amp.GradScaler(device, enabled=precision == "16-mixed")  # as Lightning's 16-mixed scales
    batches = _endless(train.batches)
    samples, data_s, start, first_loss = 0, 0.0, None, None
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            start = time.perf_counter()
        t0 = time.perf_counter()
        x, y = next(batches)
        if i >= warmup:
            data_s += time.perf_counter() - t0
            samples += len(x)
        with autocast(precision, device):
            loss = hand_loss(step_fn(x), y, task.output_kind)
        first_loss = loss.detach() if first_loss is None else first_loss
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cell.train.grad_clip:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, cell.train.grad_clip)
        scaler.step(opt)
        scaler.update()
    _sync(device)
    seconds = time.perf_counter() - start if start is not None else float("nan")
    return {"samples_per_s": samples / seconds, "data_share": data_s / seconds, "first_loss": float(first_loss)}


def suite_throughput(cell: Cell, steps: int, warmup: int) -> dict:
    """The suite's real path: SeqModule under the Trainer, the task's own batches, the run's callbacks."""
    from suite.callbacks import TrainSpeed

    device = device_for(cell)
    _, train, _, _, module = assemble(cell, device)
    k = cell.train.steps_per_call
    warm = max(1, math.ceil(warmup / k))
    calls = warm + max(1, math.ceil(steps / k))
    speed = TrainSpeed(warm)
    trainer = trainer_for(dataclasses.replace(cell, train=dataclasses.replace(cell.train, epochs=1)), device,
                          [speed], progress=False, limit_train_batches=calls, limit_val_batches=0)
    trainer.fit(module, _Limited(train, calls))
    return {"samples_per_s": speed.samples_per_s}


def saved_activation_mb(cell: Cell) -> float:
    """MB of tensors autograd keeps for one training step's backward (device-independent memory figure)."""
    device = device_for(cell)
    _, train, _, _, module = assemble(cell, device)
    x, y = next(iter(train.batches))
    total = 0
    seen = set()

    def pack(t):
        nonlocal total
        key = (t.untyped_storage().data_ptr(), t.dtype)
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module.model_step((x, y))[0].backward()
    return total / 2**20


def peak_cuda_mb(cell: Cell, steps: int = 3) -> float:
    torch.cuda.reset_peak_memory_stats()
    raw_throughput(cell, steps, 1)
    return torch.cuda.max_memory_allocated() / 2**20


class _Limited:
    def __init__(self, iterable, n):
        self.iterable, self.n = iterable, n

    def __len__(self):
        return self.n

    def __iter__(self):
        yield from itertools.islice(_endless(self.iterable), self.n)


def _endless(iterable):
    while True:
        yield from iterable


def measure(cell: Cell, repeats: int = 5, steps: int | None = None, warmup: int = 5, compile: bool = False,
            target_s: float = 1.0, monitor=None) -> SpeedRow:
    """All figures for one cell; the variants are interleaved within each repeat, and the suite and the
    raw loop take turns going first, so drift and warm-up order hit them alike. `monitor`: a context manager
    factory under which the suite is timed once more (e.g. MLflow's system-metrics sampling)."""
    if steps is None:  # size each measurement to about target_s seconds
        probe = raw_throughput(cell, 3, 2)["samples_per_s"]
        steps = max(5, min(300, round(target_s * probe / cell.train.batch_size)))
    from suite.models import MODELS
    from suite.models.stepped import can_step, stepped_form

    suite, raw, loop, compiled, shares, monitored = [], [], [], [], [], []
    loops = can_step(MODELS[cell.model])  # a backbone that can step its recurrence in Python
    for repeat in range(repeats):
        for variant in ("suite", "raw") if repeat % 2 == 0 else ("raw", "suite"):  # neither always goes first
            if variant == "suite":
                suite.append(suite_throughput(cell, steps, warmup)["samples_per_s"])
            else:
                r = raw_throughput(cell, steps, warmup)
                raw.append(r["samples_per_s"])
                shares.append(r["data_share"])
        if loops:
            loop.append(raw_throughput(cell, max(3, steps // 4), 1, backbone=stepped_form)["samples_per_s"])
        if compile:
            compiled.append(raw_throughput(cell, steps, warmup, compile=True)["samples_per_s"])
        if monitor is not None:
            with monitor():
                monitored.append(suite_throughput(cell, steps, warmup)["samples_per_s"])
    device = device_for(cell)
    return SpeedRow(cell, median(suite), median(raw), median(loop) if loop else None,
                    median(compiled) if compiled else None, median(shares), saved_activation_mb(cell),
                    peak_cuda_mb(cell) if device == "cuda" else None, same_loss=same_first_loss(cell),
                    monitored=median(monitored) if monitored else None)


def same_first_loss(cell: Cell) -> bool:
    """The raw loop and the suite compute the same loss on the same first batch (the same work is timed)."""
    device = device_for(cell)
    task, train, _, _, module = assemble(cell, device)
    batch = next(iter(train.batches))
    raw = raw_throughput(cell, 0, 1)["first_loss"]  # one step: the loss before any update
    with torch.no_grad():
        ours = float(module.model_step(batch)[0])
    return math.isclose(raw, ours, rel_tol=1e-4, abs_tol=1e-6)


def speed(exp, repeats: int = 5, steps: int | None = None, compile: bool = False, tracking: str | None = None,
          experiment: str | None = None, system_metrics: bool = False) -> int:
    """`rnnbench speed`: every cell (first seed) measured, printed, and recorded as one run each; 1 when a cell
    could not be measured (the others still are)."""
    from suite.benchmark import store_for

    if repeats < 1 or (steps is not None and steps < 1):
        raise UserError("--repeats and --steps: need at least 1")
    cells = exp.first_seed()
    store = store_for(exp, tracking, experiment or "rnnbench-speed")
    print(f"{len(cells)} cells, {repeats} interleaved repeats each (medians)", flush=True)
    with contextlib.ExitStack() as stack:
        monitor = _monitor(store, stack.enter_context(open_run(
            store, "system-metrics-probe", {TAG: Role.SPEED_PROBE}, heartbeat=False))) if system_metrics else None
        rows, failed = _measure_all(cells, repeats, steps, compile, monitor)
    attach_attn_ratios(rows)
    env = environment()
    for r in rows:
        c = r.cell
        tags = {TAG: Role.SPEED, "model": c.model, "task": c.task, "seq_len": str(c.seq_len),
                "device": device_for(c), "batch_size": str(c.train.batch_size), "config_hash": c.config_hash, **env}
        with open_run(store, f"speed-{c.model}-{c.task}-T{c.seq_len}", tags, heartbeat=False) as run:
            log_metrics(store.client, run.id, r.metrics())
    if rows:
        print(speed_table(rows))
    print(f"Recorded in MLflow experiment {store.experiment} ({len(rows)} runs)")
    for line in failed:
        print(f"  {line}")
    return 1 if failed else 0


def _measure_all(cells, repeats, steps, compile, monitor) -> tuple[list[SpeedRow], list[str]]:
    rows, failed = [], []
    for i, cell in enumerate(cells, 1):
        try:
            r = measure(cell, repeats, steps, compile=compile, monitor=monitor)
        except UserError:
            raise
        except Exception as e:  # one cell's failure does not stop the others
            failed.append(f"FAILED {cell.label}: {one_line(e)[:300]}")
            print(f"[{i}/{len(cells)}] {failed[-1]}", flush=True)
            continue
        if not r.same_loss:
            failed.append(f"FAILED {cell.label}: the suite and the raw loop disagree on the first loss")
            continue
        rows.append(r)
        print(f"[{i}/{len(cells)}] {cell.model} · {cell.task} T={cell.seq_len}: suite {r.suite:.0f}/s, "
              f"raw {r.raw:.0f}/s, suite/raw {r.ratio:.3f}"
              + (f", with system metrics {r.monitored / r.suite:.3f}" if r.monitored else ""), flush=True)
    return rows, failed


def _monitor(store, probe):
    """MLflow's system-metrics sampler at 10x the rate runs use (every second), logging to the probe run."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    @contextlib.contextmanager
    def sampling():
        monitor = SystemMetricsMonitor(probe.id, sampling_interval=1, tracking_uri=store.uri)
        monitor.start()
        try:
            yield
        finally:
            monitor.finish()

    return sampling
