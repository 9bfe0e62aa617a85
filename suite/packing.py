"""Cells side by side on one machine: K worker processes, the cores split between them, or K on each GPU.

The models are small (12k-70k parameters): one cell cannot keep two cores busy, let alone a GPU. Measured on
2 cores, the same 4 cells: one process with 2 threads 48.9 s, two processes with 1 thread each 31.9 s (1.53x),
and a cell's samples/s with 1 thread equalled its speed with 2; so `--jobs auto` on CPU is one job a core.
Each cell is still its own MLflow run, claimed, resumed and skipped as in a serial matrix; only the order
changes (costliest first, so the last cells to end are short ones).
"""
from __future__ import annotations

import os
import queue
import signal
import time
from dataclasses import dataclass

from suite.errors import UserError
from suite.signals import on_sigterm, stop_if_interrupted

SMALL = 50  # --jobs auto packs only cells of more optimizer steps: the smoke profile's 16 cells of 16 steps took
# 20 s one at a time and 28 s in 2 jobs (a worker's start, importing torch and Lightning, is ~8 s)
PER_GPU = 4  # cells sharing a GPU under --jobs auto (`make gpu-check` measures K=4 against 1, and other ways)


@dataclass(frozen=True)
class Packing:
    jobs: int  # cells trained at once
    threads: int  # torch threads each
    gpus: tuple[str, ...] = ()  # the GPUs the jobs are spread over, round robin (empty: the CPU)

    def describe(self) -> str:
        where = f"{len(self.gpus)} GPU(s)" if self.gpus else f"{cores()} cores"
        return f"{self.jobs} jobs at once on {where}, {self.threads} thread(s) each"


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def choose_packing(cells: list, flags: tuple[str | None, int | None]) -> Packing | None:
    """The packing that (--jobs, --jobs-per-gpu) asks for these cells (None: one at a time); printed when used."""
    if not cells or flags == (None, None):
        return None
    if flags[0] == "auto" and flags[1] is None:
        steps = sum(c.planned_steps for c in cells) / len(cells)
        if steps < SMALL:
            print(f"packing: none, one cell at a time (cells of ~{steps:.0f} steps: starting a worker costs more "
                  "than it saves)", flush=True)
            return None
    from suite.train import device_for  # Lightning: only when cells are packed

    pack = packing_of(*flags, device_for(cells[0]), len(cells))
    print(f"packing: {pack.describe()}", flush=True)
    return pack


def packing_of(jobs: str | None, per_gpu: int | None, device: str, cells: int) -> Packing | None:
    """--jobs K|auto and --jobs-per-gpu N for `cells` cells on `device`; None: one cell at a time, as before."""
    if jobs is None and per_gpu is None:
        return None
    if device == "cuda":
        import torch

        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        gpus = tuple(visible.split(",")) if visible else tuple(str(i) for i in range(torch.cuda.device_count()))
        k = len(gpus) * (per_gpu or PER_GPU) if jobs in (None, "auto") else int(jobs)
    else:
        if per_gpu is not None:
            raise UserError("--jobs-per-gpu: these cells train on the CPU; use --jobs K (or auto) to pack them there")
        gpus, k = (), cores() if jobs == "auto" else int(jobs)
    k = max(1, min(k, cells))
    return Packing(k, max(1, cores() // k), gpus)


def run_packed(store, todo: list, settings, show, run):
    """Yield (index, Outcome, note, seconds) as the workers finish `todo`'s (index, cell) pairs, costliest cell
    first, packed as `settings.packing` says: each worker calls `run(store, cell, settings)` -> (Outcome, note)."""
    import multiprocessing

    from suite.runner import Outcome

    pack = settings.packing
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no torch threads or CUDA state inherited
    outbox, waiting = ctx.Queue(), sorted(todo, key=lambda item: -item[1].cost)
    slots: dict[int, list] = {}  # slot -> [process, inbox, (index, cell) or None]

    def start(slot):
        inbox = ctx.Queue()
        proc = ctx.Process(target=_worker, args=(slot, pack, store.uri, store.experiment, settings, run, inbox,
                                                 outbox, os.getpid()), name=f"rnnbench-job-{slot}")
        proc.start()
        slots[slot] = [proc, inbox, None]

    def feed(slot):
        if waiting:
            slots[slot][2] = waiting.pop(0)
            slots[slot][1].put(slots[slot][2])
            show.start(slots[slot][2][1], slot)

    try:
        for slot in range(min(pack.jobs, len(waiting))):
            start(slot)
            feed(slot)
        while any(s[2] for s in slots.values()):
            try:
                slot, event, payload = outbox.get(timeout=2)
            except queue.Empty:
                for slot, (proc, _, item) in list(slots.items()):
                    if item and not proc.is_alive():  # killed (kill -9, the OOM killer): its run goes stale
                        why = f"its worker process died (exit code {proc.exitcode}); rerun to resume it"
                        yield item[0], Outcome(item[1], "FAILED", error=why), f"FAILED ({why})", None
                        slots[slot][2] = None
                        if waiting:
                            start(slot)
                            feed(slot)
                continue
            if event == "error":
                raise payload  # a UserError (or Fault) a worker met: the line it says
            if event == "interrupted":
                raise KeyboardInterrupt
            index = slots[slot][2][0]
            slots[slot][2] = None
            outcome, note, seconds = payload
            yield index, outcome, note, seconds if outcome.status != "SKIPPED" else None
            feed(slot)
    except BaseException:  # Ctrl-C, SIGTERM, a lost store: each worker ends its run KILLED (checkpoint kept)
        _stop(slots, signal.SIGTERM)
        raise
    for proc, inbox, _ in slots.values():
        if proc.is_alive():
            inbox.put(None)
    _stop(slots, None)


def _stop(slots: dict, sig):
    """Wait for each worker to end (after `sig`, one at a time: SQLite stores lock on runs ending together)."""
    for proc, _, _ in slots.values():
        if sig is not None and proc.is_alive():
            os.kill(proc.pid, sig)
        proc.join(120)
        if proc.is_alive():
            proc.kill()
            proc.join(5)


def _worker(slot: int, pack: Packing, uri: str, experiment: str, settings, run, inbox, outbox, parent: int):
    """A job: cells from `inbox` until None (or the parent is gone), each result onto `outbox`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us with SIGTERM
    on_sigterm()
    os.environ["RNNBENCH_THREADS"], os.environ["RNNBENCH_JOBS"] = str(pack.threads), str(pack.jobs)
    if pack.gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = pack.gpus[slot % len(pack.gpus)]
    try:
        from suite.tracking import connect
        from suite.train import init_torch

        init_torch()
        store = connect(uri, experiment)
        while True:
            try:
                item = inbox.get(timeout=5)
            except queue.Empty:
                stop_if_interrupted()  # a SIGTERM swallowed while we waited
                if os.getppid() != parent:  # the parent was killed: no one will read our results
                    return
                continue
            if item is None:
                return
            started = time.perf_counter()
            outcome, note = run(store, item[1], settings)
            outbox.put((slot, "done", (outcome, note, time.perf_counter() - started)))
    except UserError as e:  # the store lost, a full disk, the server refusing us: the parent stops with this line
        outbox.put((slot, "error", e))
    except KeyboardInterrupt:
        outbox.put((slot, "interrupted", None))
