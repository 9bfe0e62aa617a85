"""How long cells take: the ETA clock a matrix's progress line uses (cost-weighted, learnt as cells finish), and
the dry run's calibration (a few training steps timed on the machine at hand) with the packed wall time it implies.

The dry run prices a setting (model x task x T) from timings of its *step key* (step_key: the model, its
settings and the batch's shapes, not the task or the seed), each at two lengths, fitted by a line of seconds
against the input length (a recurrence's work per step is linear in T). A few steps of each model's costliest
key first, at its longest length or as long as a step of STEP_S allows, then the other keys, costliest first,
while CALIBRATION_S lasts; a key left untimed takes its model's line. A cell's estimate is its steps x step
time + the sequences it evaluates x their time; setting up (MNIST, drawing evaluation sets: seconds) and
saving the model are left out. The packed wall time is the longest job when cells go costliest first to the
job that frees up first. No MLflow here: the GPU check uses it on a bare machine.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from typing import Callable, NamedTuple

from suite.config import Cell

PROBE = 8  # the short length every timed key runs first (at most a quarter of its longest): the fixed cost of a step
STEP_S = 0.4  # a timed step lasts at most about this long: a longer setting is timed at the length this allows
CALIBRATION_S = 20.0  # after each model's costliest key: the other keys, costliest first, until this many seconds


class Clock:
    """Seconds per unit of cost, learnt from the cells trained so far (per model once one of its cells has
    finished, since models differ in price), applied to the work left and spread over the jobs."""

    def __init__(self, jobs: int, work: Callable[[Cell], float] | None = None):
        """`work`: a cell's units of cost (default Cell.cost; less for a cell that carries on from another run)."""
        self.jobs, self.seconds, self.units = jobs, {}, {}
        self.work = work or (lambda cell: cell.cost)

    def record(self, cell: Cell, seconds: float):
        self.seconds[cell.model] = self.seconds.get(cell.model, 0.0) + seconds
        self.units[cell.model] = self.units.get(cell.model, 0.0) + self.work(cell)

    def rate(self, model: str) -> float | None:
        if model in self.units:
            return self.seconds[model] / self.units[model]
        total = sum(self.units.values())
        return sum(self.seconds.values()) / total if total else None

    def eta(self, waiting: list[Cell], running: dict[str, tuple[Cell, float]]) -> float | None:
        """Seconds until the last cell ends; None before any cell has trained (nothing measured yet)."""
        if not self.units:
            return None
        now = time.perf_counter()
        left = sum(self.work(c) * self.rate(c.model) for c in waiting)
        left += sum(max(self.work(c) * self.rate(c.model) - (now - t), 0.0) for c, t in running.values())
        return left / min(self.jobs, max(len(waiting) + len(running), 1))


def estimate(cell: Cell, threads: int) -> float:
    """Seconds the cell takes here, from timing a short piece of it with `threads` torch threads (the GPU
    check's per-setting estimate: the Training built and fitted as the run will). Saving the model at the end
    is left out: a pickle with its code, a few hundredths of a second."""
    import torch

    from suite.train import Training, trainer_for  # Lightning: only when a cell is timed (the clock needs none)

    torch.set_num_threads(threads)
    calls = 2  # timed training calls after the warm-up
    warm = -(-cell.train.warmup_steps // cell.train.steps_per_call)
    short = dataclasses.replace(cell, train=dataclasses.replace(
        cell.train, epochs=1, steps_per_epoch=(warm + calls) * cell.train.steps_per_call, gradflow=False))
    started = time.perf_counter()
    training = Training(short)
    setup = time.perf_counter() - started
    trainer = trainer_for(short, training.device, [training.speed], False, limit_val_batches=1)
    trainer.fit(training.module, training.train_batches)
    step = cell.train.batch_size / training.speed.samples_per_s
    started = time.perf_counter()
    trainer.validate(training.module, training.val_batches, verbose=False)  # one batch: a pass is len(val) of them
    val = (time.perf_counter() - started) * len(training.val_batches)
    test = val * len(training.test_batches) / max(len(training.val_batches), 1)
    return setup + cell.planned_steps * step + cell.train.epochs * val + test


class StepKey(NamedTuple):
    model: tuple  # the model, its settings and what a step runs through (an untimed key takes the line of its
    shape: tuple  # model's costliest key); the batch's input width, outputs and output kind


def step_key(cell: Cell) -> StepKey:
    """What the price of one training step depends on besides the length: the model and its settings but its
    init (under a param_budget the hidden size follows from the widths below), the batch size, device,
    precision, optimizer and clipping, and the batch's shapes: input width, outputs and output kind (a head
    at every step or at the last). Not the task: tasks of the same shapes cost the same per step; not the
    seed, the learning rate or the epochs. The one place that decides which settings share a calibration."""
    task, train = cell.shared_task, cell.train
    settings = {k: v for k, v in dataclasses.asdict(cell.model_cfg).items() if k != "init"}
    return StepKey((cell.model, json.dumps(settings, sort_keys=True), train.batch_size, train.device,
                    train.precision, train.optimizer, train.grad_clip is not None),
                   (task.input_size, task.n_outputs, task.output_kind))


@dataclasses.dataclass(frozen=True)
class Line:
    """Seconds of a training step and of evaluating one sequence, timed at two input lengths, and a straight
    line through them for other lengths: right for recurrences (linear in T), low beyond the longer length
    for attention (quadratic), so a Transformer's extrapolated figures are lower bounds."""

    cell: Cell  # whose shapes were timed
    lengths: tuple[int, int]
    step: tuple[float, float]
    seq: tuple[float, float]

    def seconds(self, cell: Cell) -> float:
        """The cell's training steps and evaluated sequences (as Cell.cost counts them), at its input length."""
        T, train = cell.shared_task.input_steps, cell.train
        evaluated = train.epochs * train.n_val + train.n_test * (1 + len(train.eval_seq_lens))
        return cell.planned_steps * _through(self.lengths, self.step, T) + \
            evaluated * _through(self.lengths, self.seq, T)


def _through(lengths: tuple[int, int], seconds: tuple[float, float], T: int) -> float:
    """The line through two timings at T; proportional to T from the longer one when they do not rise (one
    length timed, or noise), so a longer setting never costs less."""
    (t1, t2), (s1, s2) = lengths, seconds
    if t2 <= t1 or s2 <= s1:
        return s2 * T / t2
    slope = (s2 - s1) / (t2 - t1)
    return max(s2 + slope * (T - t2), 0.0)


def time_line(cell: Cell, threads: int, longest: int) -> Line:
    """Time the cell's model on random batches of its shapes: training steps at a short length (one to warm up,
    then the faster of two), then at longer lengths until a step takes STEP_S / 2 or `longest` input steps are
    reached (the faster of two there; a probe slowed by a busy machine cannot pin the length down, nor leave
    the key without a slope), and one evaluation batch at each of the two. The very code a run trains
    through (SeqModule.training_step, without a Trainer); random values, as a step costs the same whatever the
    numbers (denormals are flushed); no task data built (MNIST, evaluation sets)."""
    import torch

    from suite.precision import autocast
    from suite.train import device_for, module_of, precision_for

    torch.set_num_threads(threads)
    task, device, size = cell.shared_task, device_for(cell), cell.train.batch_size
    module = module_of(cell, task).to(device)
    opt = module.configure_optimizers()
    module.optimizers = lambda use_pl_optimizer=False: opt
    precision = precision_for(cell, device)

    def timed(T: int, train: bool) -> float:
        batch = _random_batch(task, size, T, device)
        module.train(train)
        with autocast(precision, device):
            return _seconds(lambda: module.training_step([batch], 0), device) if train else \
                _seconds(lambda: module.validation_step(batch, 0), device, torch.inference_mode())

    short = max(1, min(PROBE, longest // 4))
    timed(short, True)
    long, s1 = short, min(timed(short, True), timed(short, True))
    s2 = s1
    # Longer, at least doubling each time, as far as the last step says STEP_S allows; a second length always.
    while long < longest and (long == short or s2 < STEP_S / 2):
        long = min(longest, max(2 * long, int(long * STEP_S / s2)))
        s2 = timed(long, True)
    if long > short:
        s2 = min(s2, timed(long, True))
    return Line(cell, (short, long), (s1, s2), (timed(short, False) / size, timed(long, False) / size))


def _random_batch(task, n: int, T: int, device):
    """n random sequences of T steps, shaped as the task's inputs and targets (its output kind)."""
    import torch

    x = torch.rand(n, T, task.input_size, device=device)
    if task.outputs.metric == "mse":  # regress_last
        return x, torch.rand(n, task.n_outputs, device=device)
    y = torch.randint(task.n_outputs, (n, T) if task.outputs.every_step else (n,), device=device)
    return x, y


def _seconds(fn: Callable, device: str, context=None) -> float:
    import torch

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with context or contextlib.nullcontext():
        sync()
        started = time.perf_counter()
        fn()
        sync()
    return time.perf_counter() - started


@dataclasses.dataclass(frozen=True)
class Price:
    seconds: float  # one cell of the setting
    how: str  # "timed" (its own key at its length), "shared" (another task's, same key and length), "extrapolated"
    line: Line


def calibrate(cells: list[Cell], threads: int, say=print) -> dict[tuple, Price]:
    """Each setting's price (by Cell.setting_key) from timing step keys with `threads` torch threads: each
    model's costliest key first, then the others costliest first until CALIBRATION_S has gone; `say` gets a
    line as each key is timed."""
    budget_s = CALIBRATION_S
    settings = {c.setting_key: c for c in cells}
    keys: dict[StepKey, list[Cell]] = {}
    for cell in settings.values():
        keys.setdefault(step_key(cell), []).append(cell)
    work = {k: sum(c.cost for c in group) for k, group in keys.items()}
    by_cost = sorted(keys, key=lambda k: -work[k])
    first = list({k.model: k for k in reversed(by_cost)}.values())[::-1]  # each model's costliest key
    order = first + [k for k in by_cost if k not in first]
    say(f"calibrating {len(keys)} step keys for {len(settings)} settings (the rest share or extrapolate their "
        f"cost): each model's costliest, then the others for up to {hms(budget_s)}, with {threads} thread(s)")
    lines: dict[StepKey, Line] = {}
    started = time.perf_counter()
    for i, key in enumerate(order, 1):
        spent = time.perf_counter() - started
        if i > len(first) and spent > budget_s:
            say(f"  budget spent: {len(order) - len(lines)} keys take their model's line")
            break
        longest = max(keys[key], key=lambda c: (c.shared_task.input_steps, c.cost))
        lines[key] = time_line(longest, threads, longest.shared_task.input_steps)
        spent = time.perf_counter() - started
        each = spent / i
        left = max(each * (len(first) - i), min(budget_s, each * len(order)) - spent, 0.0)
        say(f"  {i}/{len(order)} {longest.model} {longest.task} T={longest.seq_len}: timed at "
            f"{'/'.join(map(str, sorted(set(lines[key].lengths))))} steps ({hms(spent)} so far, ~{hms(left)} "
            "left)")
    model_line = {k.model: lines[k] for k in first}
    prices = {}
    for key, group in keys.items():
        line = lines.get(key) or model_line[key.model]
        for cell in group:
            T = cell.shared_task.input_steps
            how = "extrapolated" if key not in lines or T not in line.lengths else \
                "timed" if cell is line.cell else "shared"
            prices[cell.setting_key] = Price(line.seconds(cell), how, line)
    return prices


def makespan(seconds: list[float], jobs: int) -> float:
    """Wall time when the costliest cell goes first to whichever job frees up first."""
    ends = [0.0] * jobs
    for s in sorted(seconds, reverse=True):
        ends[ends.index(min(ends))] += s
    return max(ends)


def hms(seconds: float) -> str:
    """Seconds as h:mm:ss (m:ss under an hour)."""
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"
