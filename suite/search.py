"""The recipe search as a benchmark runs it (suite/recipe.py says what it is and why): each rung's runs as one
matrix, packed like the benchmark's cells, skipped once finished and resumed when stopped, a later rung carrying on
from the run before it; then each model's chosen point for its scored cells. The dry run lays out the same phases
(`phases`) without running them."""
from __future__ import annotations

import dataclasses
import json
import math
import time

from suite.config import Cell
from suite.eta import hms
from suite.matrix import Settings, cell_state, run_matrix
from suite.recipe import Found, RecipeConfig, Search, label, plan, score
from suite.roles import Role
from suite.runner import Outcome
from suite.runs import Setting


@dataclasses.dataclass
class Searched:
    """What a benchmark's search gave: the scored cells at each model's chosen point (a pinned model's as they
    were), what each search found, and how long it took."""

    cells: list[Cell]
    tags: dict = dataclasses.field(default_factory=dict)  # a scored cell's config_hash -> {"recipe_point": ...}
    found: list[Found] = dataclasses.field(default_factory=list)
    outcomes: list[Outcome] = dataclasses.field(default_factory=list)
    seconds: float = 0.0


def loss_of(o: Outcome) -> float | None:
    """A search run's last validation loss (None: it failed or diverged)."""
    value = o.metrics.get("val_loss") if o.status != "FAILED" else None
    return value if value is not None and math.isfinite(value) else None


def search(store, cells: list[Cell], cfg: RecipeConfig, settings: Settings, say=print) -> Searched:
    """Every search the cells' models have, rung by rung, then the scored cells at the points chosen."""
    plans = plan(cells, cfg)
    if not plans:
        return Searched(cells)
    started, last = time.perf_counter(), len(cfg.rungs) - 1
    alive = {key: list(s.points) for key, s in plans.items()}
    losses: dict[tuple, dict[str, list]] = {key: {} for key in plans}
    chance: dict[tuple, float] = {}
    ran: dict[tuple, tuple[str, int]] = {}  # (search key, point) -> (its last run, that run's epochs)
    outcomes = []
    for rung in range(len(cfg.rungs)):
        todo = [(key, point, plans[key].cell(point, rung)) for key in plans for point in alive[key]]
        warm = {c.config_hash: ran[(key, p)] for key, p, c in todo if (key, p) in ran}
        say(f"recipe search, rung {rung + 1}/{last + 1}: {len(todo)} runs of {len(plans)} model x setting searches, "
            f"each trained to {cfg.rungs[rung]:g} of its setting's epochs on seed {cfg.seed}"
            + (f", the best {cfg.keep:g} of the rung before carrying on from it" if rung else ""))
        rung_settings = dataclasses.replace(
            settings, role=Role.RECIPE, tested=False, keep_final=rung < last, warm=warm,
            tags={c.config_hash: plans[key].tags(p, rung) for key, p, c in todo},
            names={c.config_hash: f"{c.model_label} · {c.task} T={c.seq_len} · {label(json.loads(p))} "
                                  f"({cfg.rungs[rung]:g})" for key, p, c in todo},
            later=tuple(_later(plans, cells, cfg, rung)))
        results = _settled(store, [c for *_, c in todo], rung_settings, say)
        outcomes += results
        for (key, point, _), o in zip(todo, results, strict=True):
            losses[key].setdefault(point, []).append(loss_of(o))
            chance[key] = o.metrics.get("chance_loss", chance.get(key))
            if o.run_id:
                ran[(key, point)] = (o.run_id, plans[key].epochs(rung))
        alive = {key: plans[key].survivors({p: losses[key][p][-1] for p in alive[key]}, rung) for key in plans}
    chosen = {key: points[0] for key, points in alive.items()}
    found = [_found(plans[key], losses[key], chance.get(key), chosen[key]) for key in plans]
    scored, tags = [], {}
    for cell in cells:
        key = cell.setting_key
        if key in plans:
            cell = plans[key].scored(cell, chosen[key])
            tags[cell.config_hash] = {"recipe_point": chosen[key]}
        scored.append(cell)
    return Searched(scored, tags, found, outcomes, time.perf_counter() - started)


def _settled(store, cells: list[Cell], settings: Settings, say, wait_s: float = 15.0) -> list[Outcome]:
    """run_matrix, then again for the cells another worker was training (left to it, so no loss of ours) until
    each has its result: the search's next step needs every loss. A worker that died leaves its run stale, and
    the matrix then trains the cell here."""
    results = run_matrix(store, cells, settings)
    while waiting := [i for i, o in enumerate(results) if o.status == "SKIPPED" and "val_loss" not in o.metrics]:
        say(f"  waiting for {len(waiting)} run(s) another worker is training (their losses decide the next rung)")
        time.sleep(wait_s)
        for i, o in zip(waiting, run_matrix(store, [cells[i] for i in waiting], settings), strict=True):
            results[i] = o
    return results


def _found(s: Search, losses: dict[str, list], chance: float | None, chosen: str) -> Found:
    cell = s.base
    return Found(s.id, cell.model, Setting(cell.task, cell.seq_len, cell.variant), list(s.points),
                 {p: [score(v, chance) for v in vs] for p, vs in losses.items()}, losses, chosen)


def _later(plans: dict, cells: list[Cell], cfg: RecipeConfig, rung: int) -> list[Cell]:
    """Stand-ins for the work after `rung` (the ETA's): each later rung's survivors, priced at the epochs they add
    (any point costs the same), then the scored cells."""
    out = []
    for later in range(rung + 1, len(cfg.rungs)):
        for s in plans.values():
            n = _alive(len(s.points), cfg, later)
            added = s.epochs(later) - s.epochs(later - 1)
            if added > 0:
                out += [s.base.overridden({"train.epochs": added}, "recipe")] * n
    return out + list(cells)


def _alive(points: int, cfg: RecipeConfig, rung: int) -> int:
    """How many points a rung trains (each rung before keeps `keep` of them, at least one)."""
    n = points
    for _ in range(rung):
        n = max(1, math.ceil(cfg.keep * n))
    return n


@dataclasses.dataclass(frozen=True)
class Planned:
    """A cell as the dry run lays the benchmark out: which phase, how much of it is left to train, and whether it
    is the very cell that will run (False: a stand-in, its point not chosen yet, priced the same)."""

    cell: Cell
    phase: str
    share: float = 1.0  # of the cell's cost: a run that carries on from another trains only its last epochs
    known: bool = True
    point: str = ""  # a search run's point, as the pages write it

    @property
    def name(self) -> str:
        if not self.point:
            return self.cell.label + ("" if self.known else " (at the point the search picks)")
        return f"{self.cell.model_label} · {self.cell.task} T={self.cell.seq_len} · " + (
            self.point if self.known else "a point the rung before keeps")


def phases(cells: list[Cell], cfg: RecipeConfig, finished: dict) -> list[list[Planned]]:
    """The benchmark's phases as far as the store (`finished`: tracking.finished_runs) decides them: each rung's
    runs, then the scored cells. A rung whose runs before have all finished has its survivors known; otherwise
    stand-ins (the first points) hold their place, and so for the scored cells until every rung has finished."""
    plans = plan(cells, cfg)
    if not plans:
        return [[Planned(c, "scored") for c in cells]]
    out, alive, known = [], {key: list(s.points) for key, s in plans.items()}, True
    for rung in range(len(cfg.rungs)):
        phase, losses = [], {}
        for key, s in plans.items():
            before = s.epochs(rung - 1) if rung else 0
            for p in alive[key]:
                cell = s.cell(p, rung)
                phase.append(Planned(cell, f"recipe rung {rung + 1}", 1 - before / s.epochs(rung), known,
                                     label(json.loads(p))))
                state = cell_state(cell, finished)
                losses.setdefault(key, {})[p] = state.run.data.metrics.get("val_loss") if state.done else None
        out.append(phase)
        known = known and all(v is not None for ls in losses.values() for v in ls.values())
        if known:
            alive = {key: plans[key].survivors(losses[key], rung) for key in plans}
        else:  # stand-ins: as many points as go on, priced alike
            keep = 1 if rung == len(cfg.rungs) - 1 else None
            alive = {key: points[:keep or _alive(len(points), cfg, 1)] for key, points in alive.items()}
    out.append([Planned(plans[c.setting_key].scored(c, alive[c.setting_key][0]) if c.setting_key in plans else c,
                        "scored", 1.0, known or c.setting_key not in plans) for c in cells])
    return out


def cost_line(searched: Searched, scored_s: float) -> str:
    """The search's wall time beside the scored cells', as the benchmark's last lines say it."""
    if not searched.found:
        return ""
    ratio = f" ({searched.seconds / scored_s:.2f}x the scored cells' {hms(scored_s)})" if scored_s > 1 else ""
    return f"recipe search: {hms(searched.seconds)} wall{ratio}, {len(searched.outcomes)} runs"
