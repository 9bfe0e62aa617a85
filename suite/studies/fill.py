"""The ways to fill one GPU with tiny models, side by side (the GPU check's `fill` and `graph` sections).

A training step of a 12k-70k-parameter recurrent model is a chain of tiny kernels bound by launch latency, so how
cells share a GPU decides what the full profile costs. Every way trains the cell's network with the same plain
loop (forward, loss, backward, clip, Adam step, in the cell's precision) over a few batches made beforehand, so
only the sharing differs: alone; K processes (what `--jobs-per-gpu K` does); K networks on K CUDA streams in one
process; S seeds vmapped (torch.func: for models written from tensor operations; nn.LSTM/nn.GRU have no batching
rule, pytorch#105982, #134606); S seeds of a fused LSTM block-diagonal in one LSTM S times wider (block_lstm.py);
and a CUDA graph of a stepped recurrence's training step against eager. Figures: aggregate samples/s (all networks
together) and the wall time of the timed steps.
"""
from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from queue import Empty

import torch
import torch.nn.functional as F
from torch import nn

from suite.data import Stream
from suite.errors import one_line
from suite.precision import autocast
from suite.studies.speed import hand_loss
from suite.train import init_torch, module_of, precision_for


def _sync(device: str):
    if device == "cuda":
        torch.cuda.synchronize()


@dataclasses.dataclass
class Job:
    """One network of a cell with its optimizer and a few of its batches, stepped by a plain loop."""

    net: nn.Module
    opt: torch.optim.Optimizer
    batches: list
    kind: str  # the task's output kind (the loss)
    clip: float | None
    precision: str  # the cell's (suite/train.py precision_for), as its run trains
    device: str

    def __post_init__(self):
        self.scaler = torch.amp.GradScaler(self.device, enabled=self.precision == "16-mixed")  # as Lightning's

    def step(self, i: int):
        x, y = self.batches[i % len(self.batches)]
        with autocast(self.precision, self.device):
            loss = hand_loss(self.net(x), y, self.kind)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.clip:
            self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.clip)
        self.scaler.step(self.opt)
        self.scaler.update()


class SteppedTanh(nn.Module):
    """A one-layer tanh RNN stepped in Python from tensor operations (F.linear, tanh), holding an nn.RNN's
    weights: what vmap can batch (nn.RNNCell's aten::rnn_tanh_cell has no batching rule, so vmap would loop)."""

    def __init__(self, rnn: nn.RNN):
        super().__init__()
        if rnn.num_layers != 1 or rnn.nonlinearity != "tanh":
            raise ValueError("SteppedTanh: one tanh layer only")
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            setattr(self, name, nn.Parameter(getattr(rnn, f"{name}_l0").detach().clone()))

    def forward(self, x):  # (B, T, I) -> (B, T, H)
        u = F.linear(x, self.weight_ih, self.bias_ih)  # every step's input projection at once
        h, out = u.new_zeros(x.shape[0], self.weight_hh.shape[0]), []
        for t in range(x.shape[1]):
            h = torch.tanh(u[:, t] + F.linear(h, self.weight_hh, self.bias_hh))
            out.append(h)
        return torch.stack(out, 1)


def job(cell, device: str, n_batches: int = 4, stepped: bool = False) -> Job:
    """A synthetic cell's network, optimizer and first training batches (no evaluation sets built); `stepped`
    (an `rnn` cell): its recurrence stepped in Python (SteppedTanh), same weights."""
    task = cell.make_task()
    torch.manual_seed(cell.seed)
    net = module_of(cell, task).net.to(device)
    if stepped:
        net.backbone = SteppedTanh(net.backbone.rnn).to(device)
    batches = list(Stream(task, cell.train.batch_size, n_batches, cell.seed, device))
    return Job(net, torch.optim.Adam(net.parameters(), lr=cell.train.lr), batches, task.output_kind,
               cell.train.grad_clip, precision_for(cell, device), device)


def _stacked(jobs: list[Job]) -> tuple[list, list]:
    """Each batch index's inputs and targets of every job, stacked on a leading seed dimension."""
    n = len(jobs[0].batches)
    return ([torch.stack([j.batches[b][0] for j in jobs]) for b in range(n)],
            [torch.stack([j.batches[b][1] for j in jobs]) for b in range(n)])


def _timed(run, steps: int, warmup: int, device: str, barrier=None) -> float:
    """Seconds for `steps` calls of run(i) after `warmup` untimed ones (and after every process at `barrier`)."""
    for i in range(warmup):
        run(i)
    _sync(device)
    if barrier is not None:
        barrier.wait(timeout=600)  # a sibling that died breaks it (BrokenBarrierError) rather than hang us
    started = time.perf_counter()
    for i in range(steps):
        run(warmup + i)
    _sync(device)
    return time.perf_counter() - started


def row(cell, way: str, models: int, samples: int, seconds: float, **extra) -> dict:
    return {"cell": cell.label, "way": way, "models": models, "samples_per_s": samples / seconds,
            "wall_s": seconds, **extra}


def alone(cell, device: str, steps: int, warmup: int = 3, stepped: bool = False, barrier=None) -> dict:
    """One network in this process; `barrier`: wait there after warming up (processes start timing together)."""
    j = job(cell, device, stepped=stepped)
    return row(cell, "alone" + (" (stepped)" if stepped else ""), 1, steps * cell.train.batch_size,
               _timed(j.step, steps, warmup, device, barrier))


def _alone_to(queue, barrier, cell, device, steps, threads):
    init_torch()
    torch.set_num_threads(threads)  # the cores split between the processes, as packed jobs split them
    try:
        queue.put(alone(cell, device, steps, barrier=barrier))
    except Exception as exc:  # noqa: BLE001 (the parent reports it in one line)
        queue.put({"error": one_line(exc)})


def processes(cell, device: str, k: int, steps: int) -> dict:
    """K processes each training its own seed at once, timed from the moment all are warm (a barrier):
    aggregate samples/s is the sum of theirs, wall the slowest's timed steps (`with_starts_s`: the whole,
    process starts included)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    queue, barrier = ctx.Queue(), ctx.Barrier(k)
    threads = max(1, torch.get_num_threads() // k)
    procs = [ctx.Process(target=_alone_to, args=(queue, barrier, dataclasses.replace(cell, seed=i), device, steps,
                                                 threads)) for i in range(k)]
    started = time.perf_counter()
    for p in procs:
        p.start()
    results = []
    while len(results) < k:  # a child that fails or dies (out of memory, a CUDA error) fails the row, never hangs it
        try:
            results.append(queue.get(timeout=5))
            failure = results[-1].get("error")
        except Empty:
            codes = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            failure = f"a worker exited with {codes}" if codes else None
        if failure:
            for p in procs:
                p.kill()
            raise RuntimeError(f"{k} processes: {failure}")
    for p in procs:
        p.join()
    return {"cell": cell.label, "way": f"{k} processes", "models": k,
            "samples_per_s": sum(r["samples_per_s"] for r in results), "wall_s": max(r["wall_s"] for r in results),
            "with_starts_s": time.perf_counter() - started}


def streams(cell, device: str, k: int, steps: int, warmup: int = 3) -> dict:
    """K networks in one process, each stepped by its own thread on its own CUDA stream (on the CPU: threads)."""
    jobs = [job(dataclasses.replace(cell, seed=i), device) for i in range(k)]
    lanes = [torch.cuda.Stream() if device == "cuda" else None for _ in jobs]
    _sync(device)  # the batches, made on the default stream, are ready before another stream reads them

    errors = []

    def lane(j, stream, first, n):
        try:
            with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
                for i in range(first, first + n):
                    j.step(i)
        except Exception as exc:  # noqa: BLE001 (raised again in the calling thread)
            errors.append(exc)

    def together(first, n):
        threads = [threading.Thread(target=lane, args=(j, s, first, n)) for j, s in zip(jobs, lanes, strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    together(0, warmup)
    _sync(device)
    started = time.perf_counter()
    together(warmup, steps)
    _sync(device)
    return row(cell, f"{k} streams", k, k * steps * cell.train.batch_size, time.perf_counter() - started)


def vmapped(cell, device: str, s: int, steps: int, warmup: int = 3, stepped: bool = False,
            keep: bool = False) -> dict:
    """S seeds as one computation: their parameters stacked (torch.func.stack_module_state), the network
    vmapped over them and over S batches, one backward, each seed's gradient clipped by its own norm, one Adam
    over the stacked tensors (elementwise, so each seed's update is its own). `keep`: the row also holds the
    stacked parameters (the tests compare them with each seed trained alone)."""
    import copy

    from torch.func import functional_call, stack_module_state, vmap

    jobs = [job(dataclasses.replace(cell, seed=i), device, stepped=stepped) for i in range(s)]
    params, buffers = stack_module_state([j.net for j in jobs])
    base = copy.deepcopy(jobs[0].net).to("meta")
    kind, clip = jobs[0].kind, cell.train.grad_clip
    xs, ys = _stacked(jobs)
    opt = torch.optim.Adam(params.values(), lr=cell.train.lr)
    losses = vmap(lambda p, b, x, y: hand_loss(functional_call(base, (p, b), (x,)), y, kind), randomness="different")

    def step(i):
        with autocast(jobs[0].precision, device):
            loss = losses(params, buffers, xs[i % len(xs)], ys[i % len(ys)]).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            grads = [p.grad for p in params.values()]
            norms = torch.stack([g.reshape(s, -1).pow(2).sum(1) for g in grads]).sum(0).sqrt()
            scale = (clip / (norms + 1e-6)).clamp(max=1.0)
            for g in grads:
                g.mul_(scale.view(-1, *[1] * (g.dim() - 1)))
        opt.step()

    return row(cell, f"{s} seeds vmapped" + (" (stepped)" if stepped else ""), s,
               s * steps * cell.train.batch_size, _timed(step, steps, warmup, device),
               **({"params": params} if keep else {}))


def block_diagonal(cell, device: str, s: int, steps: int, warmup: int = 3) -> dict:
    """S seeds of a fused LSTM cell as one block-diagonal LSTM (one cuDNN call a step for all of them)."""
    from suite.studies.block_lstm import BlockLSTM

    jobs = [job(dataclasses.replace(cell, seed=i), device) for i in range(s)]
    block = BlockLSTM([j.net for j in jobs])
    kind, clip = jobs[0].kind, cell.train.grad_clip
    xs, ys = _stacked(jobs)
    opt = torch.optim.Adam(block.parameters(), lr=cell.train.lr)
    per_seed = torch.func.vmap(lambda o, y: hand_loss(o, y, kind))

    def step(i):
        with autocast(jobs[0].precision, device):
            loss = per_seed(block(xs[i % len(xs)]), ys[i % len(ys)]).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            block.clip_each(clip)
        opt.step()

    return row(cell, f"{s} seeds block-diagonal", s, s * steps * cell.train.batch_size,
               _timed(step, steps, warmup, device))


def graphed(cell, device: str, steps: int, warmup: int = 3) -> list[dict]:
    """A training step of the cell's recurrence stepped in Python, eager, then captured as a CUDA graph and replayed
    (static batches refilled, Adam capturable); only eager on the CPU or under 16-mixed (its scaler syncs)."""
    j = job(cell, device, stepped=True)
    rows = [row(cell, "stepped, eager", 1, steps * cell.train.batch_size, _timed(j.step, steps, warmup, device))]
    if device != "cuda" or j.precision == "16-mixed":
        return rows
    j = job(cell, device, stepped=True)
    j.opt = torch.optim.Adam(j.net.parameters(), lr=cell.train.lr, capturable=True)
    static_x, static_y = (t.clone() for t in j.batches[0])
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for i in range(warmup):
            j.step(i)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    j.opt.zero_grad(set_to_none=True)
    captured = time.perf_counter()
    with torch.cuda.graph(graph):
        with autocast(j.precision, device, cache_enabled=False):  # no cast cache across a capture
            loss = hand_loss(j.net(static_x), static_y, j.kind)
        loss.backward()
        if j.clip:
            torch.nn.utils.clip_grad_norm_(j.net.parameters(), j.clip)
        j.opt.step()
    capture_s = time.perf_counter() - captured

    def replay(i):
        x, y = j.batches[i % len(j.batches)]
        static_x.copy_(x)
        static_y.copy_(y)
        graph.replay()

    return rows + [row(cell, "stepped, CUDA graph", 1, steps * cell.train.batch_size,
                       _timed(replay, steps, warmup, device), capture_s=capture_s)]
