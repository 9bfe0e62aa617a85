"""Each model's own recipe: its learning rate (and whatever else a profile searches) chosen per model and task
setting on the validation set, by successive halving on a seed the verdict does not score; or pinned.

The field compares architectures each at its own best learning rate: MAD (Poli et al. 2024) sweeps lr x weight
decay for every model and task and keeps the best on held-out data, Zoology sweeps lr per model, LRA, S4 and the
LRU tune per model; and recurrent models solve associative recall only inside a narrow learning-rate window
(Okpekpe & Orvieto 2025), so one shared lr can flip a ranking. A profile's `recipe:` declares the grid, a model's
own grid where its paper tunes more (weight decay), or pins every model at its train.* values (a reproduction
must); `--set train.lr=X` pins the learning rate. The pages say which.

Successive halving (Jamieson & Talwalkar 2016): every point of a model's grid trains the first rung's share of
the epochs on the search seed; the best `keep` share by the last validation loss trains on to the next rung from
its checkpoint, and so on; the best at the last rung is the model's recipe on that setting. With 4 points at 1/4
and the best 2 on to 1/2, a search trains 1.5 runs' worth: half of what 3 seeds train. Nothing here runs a cell
(suite/search.py does); the report reads what a search found back through `Found`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math

from pydantic.dataclasses import dataclass

from suite.config import Cell
from suite.errors import UserError
from suite.models import MODELS
from suite.schema import STRICT, NonNegInt, Share
from tasks.base import TEST_SEED, VAL_SEED

Grid = dict[str, dict[str, list[int | float | str | bool]]]  # section -> key -> values: {"train": {"lr": [...]}}
LR_GRID = (3e-4, 1e-3, 3e-3, 1e-2)  # 4 values over 33x, each ~3x the last; the CPU profiles' one lr among them
SEARCHABLE = ("train", "model")  # a task.* key would change the setting, not the recipe
FIXED = ("train.epochs", "train.steps_per_epoch", "train.test_at")  # the rungs set these
WINDOW = 0.05  # a point is in a model's learning-rate window when its validation score is this close to its best


@dataclass(config=STRICT)
class RecipeConfig:
    pinned: bool = False  # every model at the profile's train.* values, no search (a reproduction's protocol)
    search: Grid = dataclasses.field(default_factory=lambda: {"train": {"lr": list(LR_GRID)}})  # every model's grid
    models: dict[str, Grid] = dataclasses.field(default_factory=dict)  # a model's own grid instead ({}: pinned)
    seed: NonNegInt = 1000  # the search trains on this seed, which no scored run uses
    rungs: list[Share] = dataclasses.field(default_factory=lambda: [0.25, 0.5])  # shares of the epochs, rising
    keep: Share = 0.5  # the share of a rung's points that trains on to the next


def grid(cfg: RecipeConfig, model: str) -> list[dict]:
    """The points a model's search trains ({"train.lr": 0.001, ...}), in grid order; [] when it is pinned."""
    if cfg.pinned:
        return []
    spec = cfg.models.get(model, cfg.search)
    paths = [f"{section}.{key}" for section, keys in spec.items() for key in keys]
    axes = [values for keys in spec.values() for values in keys.values()]
    if not paths:
        return []
    return [dict(zip(paths, combo, strict=True)) for combo in itertools.product(*axes)]


def check(cfg: RecipeConfig, seeds: list[int], source: str):
    """What the settings alone can tell: sections and keys the rungs leave free, values, rungs rising, the seed."""
    for where, spec in [("recipe.search", cfg.search), *((f"recipe.models.{m}", g) for m, g in cfg.models.items())]:
        for section, keys in spec.items():
            if section not in SEARCHABLE:
                raise UserError(f"{source}: {where}.{section}: a recipe searches train.* and model.* keys; "
                                f"{section}.* would change the task setting itself")
            for key, values in keys.items():
                if f"{section}.{key}" in FIXED:
                    raise UserError(f"{source}: {where}.{section}.{key}: the search's rungs set it; search another key")
                if not values or len(set(map(json.dumps, values))) != len(values):
                    raise UserError(f"{source}: {where}.{section}.{key}: expected a list of distinct values "
                                    f"(got {values!r})")
    for model in cfg.models:
        if model not in MODELS:
            raise UserError(f"{source}: recipe.models.{model}: unknown model; known: {', '.join(MODELS)}")
    if cfg.rungs != sorted(set(cfg.rungs)):
        raise UserError(f"{source}: recipe.rungs: expected rising shares of the epochs (got {cfg.rungs})")
    if cfg.seed in seeds or cfg.seed in (VAL_SEED, TEST_SEED):
        what = "a scored seed" if cfg.seed in seeds else "the seed of the validation or test sets"
        raise UserError(f"{source}: recipe.seed: {cfg.seed} is {what}; the search must train on a seed nothing else "
                        "uses (e.g. 1000)")


def pin(cfg: RecipeConfig, keys: list[str]) -> RecipeConfig:
    """The recipe with `keys` (config paths a --set gave a value) taken out of every grid: they are pinned."""
    def without(spec: Grid) -> Grid:
        out = {s: {k: v for k, v in keys_.items() if f"{s}.{k}" not in keys} for s, keys_ in spec.items()}
        return {s: k for s, k in out.items() if k}

    return dataclasses.replace(cfg, search=without(cfg.search), models={m: without(g) for m, g in cfg.models.items()})


def label(point: dict) -> str:
    """A point as the pages write it: "lr 0.003", "lr 0.001, weight_decay 0.1"."""
    return ", ".join(f"{k.split('.', 1)[1]} {v:g}" if isinstance(v, float) else f"{k.split('.', 1)[1]} {v}"
                     for k, v in point.items())


def labels(points: list[dict]) -> str:
    """Points as the pages list them: "lr 0.001 · 0.003" when they differ in one key, else each label()."""
    keys = {k for p in points for k in p}
    if len(keys) == 1 and all(len(p) == 1 for p in points):
        key = next(iter(keys))
        return f"{key.split('.', 1)[1]} " + " · ".join(label(p).split(" ", 1)[1] for p in points)
    return " · ".join(map(label, points))


def key_of(point: dict) -> str:
    return json.dumps(point, sort_keys=True)


@dataclasses.dataclass(frozen=True, eq=False)
class Search:
    """One model's search on one task setting: its points, each trained on the search seed at each rung it
    reaches."""

    base: Cell  # a scored cell of the setting (any seed), at the profile's values
    points: tuple[str, ...]  # each point as key_of() gives it, in grid order
    cfg: RecipeConfig

    @property
    def id(self) -> str:
        """Names the search: the setting without the seed and the searched keys, the points, rungs, keep and seed;
        every scored run it chose records it (Cell.recipe)."""
        resolved = self.base.resolved()
        del resolved["seed"]
        for path in json.loads(self.points[0]):
            section, key = path.split(".", 1)
            resolved[section].pop(key, None)
        spec = {"setting": resolved, "points": self.points, "rungs": self.cfg.rungs, "keep": self.cfg.keep,
                "seed": self.cfg.seed}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]

    def epochs(self, rung: int) -> int:
        """The epochs of a rung: its share of the setting's, the nearest whole epoch (at least 1)."""
        return min(self.base.train.epochs, max(1, round(self.cfg.rungs[rung] * self.base.train.epochs)))

    def cell(self, point: str, rung: int) -> Cell:
        """The run of `point` at `rung`: the setting on the search seed, validated only, trained that rung's epochs
        (a later rung carries on from the one before it: suite/search.py)."""
        values = {**json.loads(point), "seed": self.cfg.seed, "train.epochs": self.epochs(rung), "train.test_at": [],
                  "train.eval_seq_lens": [], "train.gradflow": False}
        return self.base.overridden(values, f"recipe ({self.base.model})")

    def scored(self, cell: Cell, point: str) -> Cell:
        """A scored seed's cell at the chosen point, naming this search."""
        return dataclasses.replace(cell.overridden(json.loads(point), f"recipe ({cell.model})"), recipe=self.id)

    def tags(self, point: str, rung: int) -> dict[str, str]:
        """A search run's: a candidate recipe (its point) of this search, at a rung."""
        return {"recipe": "candidate", "recipe_search": self.id, "recipe_point": point, "recipe_rung": str(rung),
                "recipe_share": f"{self.epochs(rung) / self.base.train.epochs:.4g}"}

    def survivors(self, losses: dict[str, float | None], rung: int) -> list[str]:
        """The points that go on from `rung` (the last rung: the chosen one), best validation loss first; a point
        that failed or diverged has none and ranks last."""
        ranked = rank(losses, self.points)
        last = rung == len(self.cfg.rungs) - 1
        return ranked[:1] if last else ranked[:max(1, math.ceil(self.cfg.keep * len(ranked)))]


def rank(losses: dict[str, float | None], order) -> list[str]:
    """Points by validation loss, lowest first (none: last), ties in grid order."""
    def loss(p):
        value = losses.get(p)
        return value if value is not None and math.isfinite(value) else math.inf

    return sorted(losses, key=lambda p: (loss(p), list(order).index(p)))


def plan(cells: list[Cell], cfg: RecipeConfig) -> dict[tuple, Search]:
    """A search for each (model, setting) of the cells whose model has a grid, by the cells' setting_key."""
    out = {}
    for cell in cells:
        points = grid(cfg, cell.model)
        if points and cell.setting_key not in out:
            out[cell.setting_key] = Search(cell, tuple(map(key_of, points)), cfg)
    return out


def score(loss: float | None, chance: float | None) -> float:
    """The answer's score of a validation loss: 1 - loss / chance, clipped to [0, 1]; none (failed) scores 0."""
    if loss is None or not chance:
        return 0.0
    return min(max(1.0 - loss / chance, 0.0), 1.0)


@dataclasses.dataclass
class Found:
    """What one search found: each point's validation score by rung (as far as it went), the chosen point and the
    window around it. Scores are the answer's: 1 - val loss / chance loss, clipped to [0, 1]; failed: 0."""

    search: str  # Search.id
    model: str
    setting: object  # runs.Setting
    points: list[str]  # grid order
    scores: dict[str, list[float]]  # point -> its score at each rung it reached
    losses: dict[str, list[float | None]]  # point -> its validation loss at each rung (None: failed)
    chosen: str | None  # the point the scored runs trained at (None: the search did not finish)

    def best(self) -> dict[int, float]:
        """The best score at each rung."""
        best = {}
        for scores in self.scores.values():
            for rung, s in enumerate(scores):
                best[rung] = max(best.get(rung, 0.0), s)
        return best

    def below(self, point: str) -> float:
        """How far the point's score at the last rung it reached is below the best there (like is compared with
        like: a point dropped at the first rung against the best at the first rung)."""
        scores = self.scores[point]
        return self.best()[len(scores) - 1] - scores[-1]

    def window(self, within: float = WINDOW) -> list[str]:
        """The points whose score is within `within` of the best (Found.below), in grid order."""
        return [p for p in self.points if self.scores.get(p) and self.below(p) <= within]

    def at_edge(self, key: str = "train.lr") -> bool:
        """The chosen point lies at an end of the grid along `key` (the best may lie beyond it)."""
        values = sorted({json.loads(p).get(key) for p in self.points} - {None})
        chosen = json.loads(self.chosen).get(key) if self.chosen else None
        return len(values) > 1 and chosen in (values[0], values[-1])

    def width(self, within: float = WINDOW, key: str = "train.lr") -> float | None:
        """The window's span along `key` as a factor (max / min of its values there; 1: one value), None when the
        grid does not search `key`."""
        values = [json.loads(p).get(key) for p in self.window(within)]
        values = [v for v in values if isinstance(v, (int, float)) and v > 0]
        return max(values) / min(values) if values else None
