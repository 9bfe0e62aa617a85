"""`rnnbench benchmark --dry-run`: the cells, what the store says of each (matrix.cell_state, as the benchmark
will decide it), and a time estimate from a short calibration on the machine at hand (suite/eta.py: a few
steps of each step key, figures off the timed lengths marked as extrapolated); it writes nothing to the store."""
from __future__ import annotations

from urllib.parse import urlsplit

from suite.config import Cell
from suite.eta import calibrate, hms, makespan
from suite.matrix import CellState, cell_state
from suite.packing import Packing, cores
from suite.stores import check_store, open_client, sqlite_file
from suite.tracking import Store, finished_runs, stopped_runs
from suite.train import init_torch


def dry_run(cells: list[Cell], uri: str, experiment: str, pack, force: bool, reuse_stale: bool) -> int:
    """Print each cell's state and estimate, and the whole matrix's wall time with `pack` (None: one at a time)."""
    init_torch()
    states = cell_states(cells, uri, experiment, force, reuse_stale)
    todo = [(c, s) for c, s in zip(cells, states, strict=True) if not s.done]
    pack = pack or Packing(1, cores())
    prices = calibrate([c for c, _ in todo], pack.threads, say=lambda line: print(line, flush=True))
    width = max((len(c.label) for c in cells), default=0)
    for cell, state in zip(cells, states, strict=True):
        took = "" if state.done else _figure(prices[cell.setting_key], _left(state, cell))
        print(f"  {cell.label:<{width}}  {state.note():<28} {took}")
    each = [prices[c.setting_key].seconds * _left(s, c) for c, s in todo]
    hows = [p.how for p in prices.values()]
    print(f"\n{len(cells)} cells: {len(cells) - len(todo)} finished, {len(todo)} to train · estimated "
          f"{hms(makespan(each, pack.jobs))} with {pack.jobs} job(s) at once ({hms(sum(each))} one at a time)"
          f"\n{len(prices)} settings: {hows.count('timed')} timed, {hows.count('shared')} share a timed one's shapes "
          f"and length, {hows.count('extrapolated')} extrapolated (marked: linearly in T, low for attention)"
          f"\nexperiment {experiment}; nothing was run or written (drop --dry-run to start)")
    return 0


def _figure(price, left: float) -> str:
    """A cell's estimate, with where it comes from unless its own shapes were timed at its length."""
    line = price.line
    if price.how != "extrapolated":
        return f"~{hms(price.seconds * left)}"
    lengths = "/".join(map(str, sorted(set(line.lengths))))
    return f"~{hms(price.seconds * left)} (extrapolated from {line.cell.task} at {lengths} steps)"


def cell_states(cells: list[Cell], uri: str, experiment: str, force: bool, reuse_stale: bool) -> list[CellState]:
    """Each cell's state in the store, read only (matrix.cell_state, as the benchmark will decide it)."""
    fresh = [CellState("train")] * len(cells)
    if force or (urlsplit(uri).scheme == "sqlite" and not sqlite_file(uri).is_file()):
        return fresh
    check_store(uri, read_only=True)
    client = open_client(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return fresh
    store = Store(uri, client, found.experiment_id, experiment)
    finished, stopped = finished_runs(store), stopped_runs(store)
    return [cell_state(c, finished, stopped, force, reuse_stale) for c in cells]


def _left(state: CellState, cell: Cell) -> float:
    """The share of a cell still to train (a resumed one carries on from its checkpoint's epoch)."""
    if state.action == "resume":
        return max(1 - int(state.run.data.tags["checkpoint_epoch"]) / cell.train.epochs, 0.0)
    return 1.0
