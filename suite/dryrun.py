"""`rnnbench benchmark --dry-run`: the cells, what the store says of each (matrix.cell_state, as the benchmark
will decide it), and a time estimate from a short calibration on the machine at hand (suite/eta.py: a few
steps of each step key, figures off the timed lengths marked as extrapolated); it writes nothing to the store.
With a recipe search the benchmark runs in phases (each rung, then the scored cells: suite/search.py), each
packed on its own; a phase the store cannot decide yet is priced with stand-ins of the same cost. A local data
copy that is missing or laid out wrong is refused first, as the run refuses it (Task.check_files)."""
from __future__ import annotations

from urllib.parse import urlsplit

from suite.config import Cell
from suite.eta import calibrate, hms, makespan
from suite.experiment import check_data
from suite.matrix import CellState, cell_state
from suite.packing import Packing, cores
from suite.recipe import RecipeConfig
from suite.search import phases
from suite.stores import check_store, open_client, sqlite_file
from suite.tracking import Store, finished_runs, stopped_runs
from suite.train import init_torch


def dry_run(cells: list[Cell], uri: str, experiment: str, pack, force: bool, reuse_stale: bool,
            recipe: RecipeConfig | None = None) -> int:
    """Print each cell's state and estimate, and the whole benchmark's wall time with `pack` (None: one at a time):
    the recipe search's rungs first when `recipe` searches, then the scored cells."""
    check_data(cells, read=False)
    init_torch()
    finished, stopped = store_runs(uri, experiment, force)
    laid = phases(cells, recipe or RecipeConfig(pinned=True), {} if force else finished)
    planned = [p for phase in laid for p in phase]
    states = [cell_state(p.cell, finished, stopped, force, reuse_stale) if p.known else CellState("train")
              for p in planned]
    todo = [(p, s) for p, s in zip(planned, states, strict=True) if not s.done]
    pack = pack or Packing(1, cores())
    prices = calibrate([p.cell for p, _ in todo], pack.threads, say=lambda line: print(line, flush=True))
    width = max((len(p.name) for p in planned), default=0)
    seconds = {}
    for p, state in zip(planned, states, strict=True):
        took = ""
        if not state.done:
            seconds[id(p)] = prices[p.cell.setting_key].seconds * p.share * _left(state, p.cell)
            took = _figure(prices[p.cell.setting_key], seconds[id(p)])
        print(f"  {p.name:<{width}}  {state.note():<28} {took}")
    walls = [makespan([seconds[id(p)] for p in phase if id(p) in seconds], pack.jobs) for phase in laid]
    each = list(seconds.values())
    hows = [p.how for p in prices.values()]
    print(f"\n{len(planned)} runs: {len(planned) - len(todo)} finished, {len(todo)} to train · estimated "
          f"{hms(sum(walls))} with {pack.jobs} job(s) at once ({hms(sum(each))} one at a time)"
          + ("\nphases, each packed on its own: " + ", ".join(f"{phase[0].phase} {hms(w)} ({len(phase)} runs)"
                                                               for phase, w in zip(laid, walls, strict=True))
             + (f"; the recipe search {sum(walls[:-1]) / walls[-1]:.2f}x the scored cells" if walls[-1] else "")
             if len(laid) > 1 else "")
          + f"\n{len(prices)} settings: {hows.count('timed')} timed, {hows.count('shared')} share a timed one's shapes "
          f"and length, {hows.count('extrapolated')} extrapolated (marked: linearly in T, low for attention)"
          f"\nexperiment {experiment}; nothing was run or written (drop --dry-run to start)")
    return 0


def _figure(price, seconds: float) -> str:
    """A cell's estimate, with where it comes from unless its own shapes were timed at its length."""
    line = price.line
    if price.how != "extrapolated":
        return f"~{hms(seconds)}"
    lengths = "/".join(map(str, sorted(set(line.lengths))))
    return f"~{hms(seconds)} (extrapolated from {line.cell.task} at {lengths} steps)"


def store_runs(uri: str, experiment: str, force: bool) -> tuple[dict, dict]:
    """The experiment's finished and stopped cell runs (tracking.finished_runs, stopped_runs), read only; none
    when forced or when there is no store or experiment yet."""
    if force or (urlsplit(uri).scheme == "sqlite" and not sqlite_file(uri).is_file()):
        return {}, {}
    check_store(uri, read_only=True)
    client = open_client(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return {}, {}
    store = Store(uri, client, found.experiment_id, experiment)
    return finished_runs(store), stopped_runs(store)


def _left(state: CellState, cell: Cell) -> float:
    """The share of a cell still to train (a resumed one carries on from its checkpoint's epoch)."""
    if state.action == "resume":
        return max(1 - int(state.run.data.tags["checkpoint_epoch"]) / cell.train.epochs, 0.0)
    return 1.0

