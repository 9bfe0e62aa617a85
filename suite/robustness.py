"""How far the answer holds: the verdict at 1/4 and 1/2 of the budget beside the full one, each model's
learning-rate window, and one sentence that says what stays and what flips (the terminal, the report's index,
summary.md and results.json all print `sentence`).

Budgets: every scored run also tests at train.test_at's shares of its epochs (suite/callbacks.py: TestAt), so the
verdict a smaller budget would have given costs a few test passes and no training; a run that stopped early,
solved, keeps its final test at the later shares. Windows: what each model's recipe search found (suite/recipe.py:
Found), read back from its runs here for the report, or taken from the search itself by the benchmark.
"""
from __future__ import annotations

import dataclasses
import json
from collections import defaultdict

from suite.overall import Overall, leaders, overall
from suite.recipe import WINDOW, Found, label, labels, score
from suite.runs import Run, setting_of
from suite.scoring import boards, fmt

BUDGETS = (0.25, 0.5, 1.0)  # the verdict at each share of the scored runs' epochs (train.test_at's defaults, and all)
SHARE_TEXT = {0.25: "¼", 0.5: "½", 1.0: "the full budget"}


def at_share(runs: list[Run], share: float) -> list[Run]:
    """The runs as their test stood at `share` of their epochs (test_<x>_at_<share>); a run without it keeps its
    final test (it stopped early, solved, or the share fell on its last epoch). The solve flag, read from the
    final test, is dropped below the full budget."""
    if share >= 1:
        return runs
    out = []
    for r in runs:
        m = dict(r.metrics)
        found = {k.removesuffix(f"_at_{share:g}"): v for k, v in m.items() if k.endswith(f"_at_{share:g}")}
        if "test_loss" in found:
            m.update(found)
            m.pop("solved", None)
            if m.get("chance_loss"):
                m["test_vs_chance"] = m["test_loss"] / m["chance_loss"]
        out.append(dataclasses.replace(r, metrics=m))
    return out


@dataclasses.dataclass
class Budget:
    share: float
    overall: Overall
    leaders: list[str] | None  # overall.leaders: the best and those it cannot be told from (None: no call)

    @property
    def text(self) -> str:
        if self.leaders is None:
            return "no model ahead"
        return self.leaders[0] + (f" (cannot be told from {', '.join(self.leaders[1:])})" if self.leaders[1:] else "")


def budgets(runs: list[Run], planned=None, recipe: str | None = None, full: Overall | None = None) -> list[Budget]:
    """The overall verdict over the cell runs at each share of BUDGETS (the full one last: `full` when given)."""
    out = []
    for share in BUDGETS:
        o = full if share == 1 and full is not None else overall(boards(at_share(runs, share), planned),
                                                                   detail=False, recipe=recipe)
        out.append(Budget(share, o, leaders(o)))
    return out


def settled(found: list[Budget]) -> bool:
    """The leader and the models that cannot be told from it are the same at 1/2 and at the full budget."""
    half, full = found[-2].leaders, found[-1].leaders
    return (half and full and half[0] == full[0] and set(half) == set(full)) or (half is None and full is None)


def found_in(recipe_runs: list[Run], scored: list[Run]) -> list[Found]:
    """What each search behind the scored runs found, read back from its runs (tags recipe_search, recipe_point,
    recipe_rung; metrics val_loss and chance_loss), the chosen point from the scored runs' recipe_point."""
    chosen = {r.tags["recipe_search"]: r.tags.get("recipe_point") for r in scored if r.tags.get("recipe_search")}
    mine = defaultdict(list)
    for r in recipe_runs:
        if r.tags.get("recipe_search") in chosen and r.status in ("FINISHED", "FAILED"):
            mine[r.tags["recipe_search"]].append(r)
    out = []
    for search, runs in mine.items():
        losses: dict[str, dict[int, float | None]] = defaultdict(dict)
        chance = next((r.metrics["chance_loss"] for r in runs if r.metrics.get("chance_loss")), None)
        for r in sorted(runs, key=lambda r: r.start):
            loss = r.metrics.get("val_loss") if r.status == "FINISHED" else None
            losses[r.tags["recipe_point"]][int(r.tags.get("recipe_rung", 0))] = loss
        points = sorted(losses, key=lambda p: tuple(json.loads(p).values()))
        by_rung = {p: [losses[p][k] for k in sorted(losses[p])] for p in points}
        out.append(Found(search, runs[0].tags["model"], setting_of(runs[0]), points,
                         {p: [score(v, chance) for v in vs] for p, vs in by_rung.items()}, by_rung, chosen[search]))
    return sorted(out, key=lambda f: (f.setting.task, f.setting.seq_len, f.setting.variant, f.model))


def windows(found: list[Found], within: float = WINDOW) -> list[dict]:
    """A row per model and setting: the chosen point, the points within `within` of the best (its window), the
    window's width along lr, and each point's scores by rung (for the plot)."""
    rows = []
    for f in found:
        window, edge = f.window(within), f.at_edge()
        chosen = label(json.loads(f.chosen)) + (" (edge)" if edge else "") if f.chosen else "–"
        rows.append({"model": f.model, "setting": f.setting, "chosen": chosen, "edge": edge,
                     "window": labels([json.loads(p) for p in window]), "width": f.width(within),
                     "in_window": len(window), "points": len(f.points), "found": f})
    return rows


def edge_note(found: list[Found]) -> str:
    """A line when searches chose an end of their learning-rate grid: the best may lie beyond it."""
    edges = [f for f in found if f.at_edge()]
    if not edges:
        return ""
    return (f"{len(edges)} of {len(found)} searches chose an end of the learning-rate grid (marked edge): the best "
            "may lie beyond it; a wider recipe.search would tell.")


def robust_share(found: list[Found], within: float = WINDOW) -> dict[str, float]:
    """Per model, the share of its searches' points within `within` of its best there (1: any point would do)."""
    inside, total = defaultdict(int), defaultdict(int)
    for f in found:
        inside[f.model] += len(f.window(within))
        total[f.model] += len(f.points)
    return {m: inside[m] / total[m] for m in total if total[m]}


def drop(found: list[Found], model: str, within: float = WINDOW) -> float | None:
    """How much a model's score can drop within its window: over its searches, the mean of (the best score at a rung
    minus the worst in-window point's score there); None without a search."""
    drops = [max((f.below(p) for p in f.window(within)), default=0.0) for f in found if f.model == model]
    return sum(drops) / len(drops) if drops else None


def _small(value: float) -> str:
    """A score difference: three decimals, or two significant digits below 0.01 (0.0012 against 0.00087)."""
    return fmt(value, "ratio") if abs(value) >= 0.01 or value == 0 else f"{value:.2g}"


def phrase(o: Overall, recipe: str | None) -> str:
    """How the verdict's models were trained, in a few words."""
    if recipe == "searched":
        return "at each model's own learning rate"
    lrs = {lr for c in o.contenders for lr in c.lr}
    return f"at one shared learning rate ({next(iter(lrs))})" if len(lrs) == 1 else "at pinned learning rates"


def sentence(found_budgets: list[Budget], recipe: str | None, found: list[Found], shared: Budget | None = None,
             within: float = WINDOW) -> str:
    """The answer's robustness in one sentence: who leads (and how recipes were chosen), whether it holds at 1/2
    of the budget, whether it survives every recipe in the leader's learning-rate window, and what one shared
    learning rate gave where those runs exist too."""
    full, half = found_budgets[-1], found_budgets[-2]
    o = full.overall
    if o.reason:
        return f"Nothing to test for robustness{' ' + phrase(o, recipe) if o.contenders else ''}: {o.reason}."
    how = phrase(o, recipe)
    if full.leaders is None:
        text = f"No model leads beyond seed noise {how}"
    elif len(full.leaders) == 1:
        text = f"{full.leaders[0]} leads {how}"
    else:
        text = f"{full.leaders[0]} leads {how} but cannot be told from {', '.join(full.leaders[1:])}"
    if settled(found_budgets):
        text += ", at ½ and at the full budget" if full.leaders else ", at ½ of the budget too"
    else:
        text += f"; not settled at this budget: at ½ of it, {half.text}"
    if full.leaders and len(full.leaders) == 1 and found:
        lost = drop(found, o.contenders[0].model, within)
        best, second = o.contenders[0], o.contenders[1] if len(o.contenders) > 1 else None
        if lost is not None and second is not None:
            margin = best.iqm - second.iqm
            text += (f"; within its learning-rate window every recipe keeps the lead (a recipe there costs it at "
                     f"most {_small(lost)} of score on the search's runs, its lead over {second.label} is "
                     f"{_small(margin)})" if lost < margin else
                     f"; the lead hangs on the recipe: a recipe within its window costs it up to {_small(lost)} of "
                     f"score on the search's runs, more than its lead over {second.label} ({_small(margin)})")
    if shared is not None:
        same = shared.leaders is not None and full.leaders is not None and shared.leaders[0] == full.leaders[0]
        text += f"; {phrase(shared.overall, 'pinned')} " + (
            f"{shared.leaders[0]} leads too" if same else "no model leads beyond seed noise"
            if shared.leaders is None else f"{shared.text} leads instead")
    return text + "."
