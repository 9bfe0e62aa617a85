"""One experiment YAML (a profile or a file) -> an Experiment: its cells, stores, tuning and sweep settings.

Every command loads its settings here, so the "profile auto →" line, --set, the narrowing to chosen models,
tasks and seeds, and the validation with key paths happen in one place.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from suite import recipe
from suite.config import (
    Cell,
    HorizonConfig,
    StoresConfig,
    TrainConfig,
    TuneConfig,
    horizon_config,
    validated,
)
from suite.errors import UserError
from suite.models import MODELS, ModelConfig
from suite.recipe import RecipeConfig
from suite.yamlio import parse_yaml, read_yaml
from tasks import TASKS
from tasks.base import TEST_SEED, VAL_SEED

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
PROFILES = ("smoke", "cpu", "cpu-extended", "cpu-probes", "cpu-lra", "full")
TOP_KEYS = ("models", "seeds", "model", "train", "tasks", "recipe", "tune", "horizon", "stores", "register", "banner")


@dataclasses.dataclass
class Experiment:
    """What a command runs: the chosen cells of an experiment, and the experiment's other settings."""

    name: str  # names the MLflow experiment rnnbench-<name>: the profile, or the config file's stem
    source: str  # the YAML's path, for messages
    origin: list[str]  # the flags that load it again (["--profile", name] or ["--config", path], then --set ...)
    settings: dict  # the YAML's settings after --set, narrowed to the chosen models and tasks
    cells: list[Cell]
    stores: StoresConfig
    tune: TuneConfig
    horizon: HorizonConfig
    matrix: list[Cell]  # every cell of the file's matrix, before --set and the choice of models/tasks/seeds
    register: bool = False  # each model x task's best run into the Model Registry after a benchmark
    banner: str = ""  # what a reader must know before any number (smoke: not results); shown first everywhere
    recipe: RecipeConfig = dataclasses.field(default_factory=RecipeConfig)  # how each model's lr is chosen

    def check_data(self):
        """Every task's data can be had: a missing or corrupt MNIST path is found before any run exists."""
        check_data(self.cells)

    @property
    def set_keys(self) -> list[str]:
        """The config paths --set gave a value (task.x for every task stays task.x)."""
        return [item.partition("=")[0] for flag, item in zip(self.origin, self.origin[1:], strict=False)
                if flag == "--set"]

    def first_seed(self) -> list[Cell]:
        """The cells of the first seed only (tuning, gradient flow and speed measure one seed)."""
        return [c for c in self.cells if c.seed == self.cells[0].seed]

    def overridden(self, values: dict, source: str) -> list[Cell]:
        """Every chosen cell with some settings changed (Cell.overridden: config paths as in --set, checked as
        they are): how a study varies an experiment's cells."""
        return [c.overridden(values, source) for c in self.cells]


def load_experiment(profile: str | None = "auto", config: str | None = None, sets=(), models=None, tasks=None,
                    seeds=None, inits=None, announce=print) -> Experiment:
    """The experiment of a profile or YAML file with --set overrides, narrowed to models/tasks/seeds if given;
    `inits` ("all" or scheme names) runs each cell once per initialisation scheme its model supports."""
    if announce and not config and (profile or "auto") == "auto":
        name = resolve_profile("auto")
        announce(f"profile auto → {name} ({'CUDA found' if name == 'full' else 'no CUDA device'})")
    raw, name, source = load_raw(profile, config)
    chosen = dict(raw)
    if seeds is not None:
        chosen["seeds"] = list(seeds)
        if not chosen["seeds"]:
            raise UserError("--seeds: needs at least 1")
    if models:
        chosen["models"] = list(models)
    if tasks:
        known = raw.get("tasks") or {}
        chosen["tasks"] = {t: known.get(t) or {} for t in tasks}
    chosen = apply_sets(chosen, list(sets))
    cells = plan(chosen, source)
    if inits:
        cells = with_inits(cells, inits, source)
    whole = plan(raw, source)  # the matrix as the file defines it, which the options choose from
    origin = ["--config", config] if config else ["--profile", name]
    for item in sets:
        origin += ["--set", item]
    return Experiment(name, source, origin, chosen, cells, validated_section(StoresConfig, chosen, "stores", source),
                      validated_section(TuneConfig, chosen, "tune", source),
                      horizon_config(section(chosen.get("horizon"), "horizon", source), source), whole,
                      chosen.get("register", False), chosen.get("banner", ""),
                      recipe_of(chosen, cells, [item.partition("=")[0] for item in sets], source))


def check_data(cells: list[Cell], read: bool = True):
    """Each task setting's data can be had (Task.check), found before any run exists; `read=False` checks only what
    needs no reading of it (Task.check_files: the dry run's check, the local copy's path and layout)."""
    seen = set()
    for cell in cells:
        key = (cell.task, json.dumps(dataclasses.asdict(cell.task_cfg), sort_keys=True))
        if key not in seen:
            seen.add(key)
            task = cell.make_task()
            (task.check if read else task.check_files)()


def recipe_of(chosen: dict, cells: list[Cell], set_keys: list[str], source: str) -> RecipeConfig:
    """The experiment's `recipe:`, with the keys --set gave a value pinned, checked on its cells: every point of
    every model's grid must make a valid cell."""
    cfg = recipe.pin(validated_section(RecipeConfig, chosen, "recipe", source), set_keys)
    models = list(dict.fromkeys(c.model for c in cells))
    recipe.check(cfg, sorted({c.seed for c in cells}), source)
    for model in models:
        first = next(c for c in cells if c.model == model)
        for path, value in {(k, json.dumps(v)) for point in recipe.grid(cfg, model) for k, v in point.items()}:
            first.overridden({path: json.loads(value)}, f"{source}: recipe ({model})")
    return cfg


def profile_banner(profile: str) -> str:
    """The `banner:` of a shipped profile ("" for none, or for a name that is no profile)."""
    if profile not in PROFILES:
        return ""
    return load_raw(profile)[0].get("banner", "")


def listing() -> str:
    """What `rnnbench list` prints: the registered models and tasks, and the profiles."""
    return "\n".join([f"models:   {', '.join(MODELS)}",
                      f"tasks:    {', '.join(f'{n} ({t.output_kind})' for n, t in TASKS.items())}",
                      f"profiles: {', '.join(('auto', *PROFILES))}"])


def resolve_profile(name: str) -> str:
    """`auto` is `full` with CUDA, else `cpu`."""
    if name != "auto":
        return name
    import torch

    return "full" if torch.cuda.is_available() else "cpu"


def load_raw(profile: str | None = None, config: str | None = None) -> tuple[dict, str, str]:
    """The YAML of a profile or an experiment file: (data, experiment suffix, source path)."""
    if config:
        path = Path(config)
        name = path.stem
    else:
        name = resolve_profile(profile or "auto")
        if name not in PROFILES:
            raise UserError(f"--profile: unknown profile '{name}'; choose one of auto, {', '.join(PROFILES)}")
        path = CONFIGS / "profiles" / f"{name}.yaml"
    data = read_yaml(path)
    if data is None or data == {}:
        raise UserError(f"{path}: empty; an experiment names at least its tasks or models (see configs/profiles/)")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of settings at the top level")
    return data, name, str(path)


def apply_sets(raw: dict, sets: list[str]) -> dict:
    """`--set key.path=value` overrides (values parsed as YAML); `task.x` applies to every task."""
    raw = json.loads(json.dumps(raw))  # a deep copy
    for item in sets:
        key, eq, text = item.partition("=")
        if not eq or not key or any(not part for part in key.split(".")):
            raise UserError(f"--set: '{item}' is not key=value (e.g. --set train.lr=0.003)")
        if not text.strip():
            raise UserError(f"--set: {key} has no value; write it out (e.g. {key}=null to unset it)")
        value = parse_yaml(text, f"--set {key}")
        head, *rest = key.split(".")
        if head == "task":
            raw["tasks"] = {t: entry or {} for t, entry in (raw.get("tasks") or dict.fromkeys(TASKS)).items()}
            targets = list(raw["tasks"].values())
        else:
            targets = [raw]
            rest = [head, *rest]
        for target in targets:
            for part in rest[:-1]:
                target = target.setdefault(part, {})
                if not isinstance(target, dict):
                    raise UserError(f"--set: {key}: '{part}' is not a section")
            target[rest[-1]] = value
    return raw


def plan(raw: dict, source: str = "config") -> list[Cell]:
    """Validate an experiment and expand it into cells (task x length x seed x model)."""
    for key in raw:
        if key not in TOP_KEYS:
            raise UserError(f"{source}: {key}: unknown key; allowed here: {', '.join(TOP_KEYS)}")
    models = raw.get("models", list(MODELS))
    if isinstance(models, str):
        models = [models]
    for m in _list(models, "models", source):
        if not isinstance(m, str) or m not in MODELS:
            raise UserError(f"{source}: models: unknown model '{m}'; known: {', '.join(MODELS)}")
    if not isinstance(raw.get("register", False), bool):
        raise UserError(f"{source}: register: expected true or false (got {raw['register']!r})")
    if not isinstance(raw.get("banner", ""), str):
        raise UserError(f"{source}: banner: expected one line of text (got {raw['banner']!r})")
    seeds = _list(raw.get("seeds", [0]), "seeds", source)
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise UserError(f"{source}: seeds: expected a list of non-negative integers (got {seeds})")
    for seed in set(seeds) & {VAL_SEED, TEST_SEED}:
        which = "validation" if seed == VAL_SEED else "test"
        raise UserError(f"{source}: seeds: {seed} draws the {which} sets, so that run would train on them; "
                        f"choose another seed (not {VAL_SEED} or {TEST_SEED})")
    tasks = raw.get("tasks") or {t: {} for t in TASKS}
    if not isinstance(tasks, dict):
        raise UserError(f"{source}: tasks: expected a mapping of task name to settings")
    cells = []
    for task_name, entry in tasks.items():
        if task_name not in TASKS:
            raise UserError(f"{source}: tasks.{task_name}: unknown task; known: {', '.join(TASKS)}")
        entry, where = dict(section(entry, f"tasks.{task_name}", source)), f"tasks.{task_name}"
        model_raw = {**section(raw.get("model"), "model", source),
                     **section(entry.pop("model", None), f"{where}.model", source)}
        train_raw = {**section(raw.get("train"), "train", source),
                     **section(entry.pop("train", None), f"{where}.train", source)}
        model_cfgs = {m: model_config(m, model_raw, "model", source) for m in models}
        train = validated(TrainConfig, train_raw, "train", source)
        lengths = entry.pop("seq_len", None)
        for seq_len in lengths if isinstance(lengths, list) else [lengths]:
            settings = entry if seq_len is None else {**entry, "seq_len": seq_len}
            task_cfg = validated(TASKS[task_name].Config, settings, where, source)
            for m in models:  # what only a whole cell tells (e.g. an infeasible param_budget), before any run exists
                Cell(m, task_name, seeds[0] if seeds else 0, model_cfgs[m], task_cfg, train).check(source)
            cells += [Cell(m, task_name, s, model_cfgs[m], task_cfg, train) for s in seeds for m in models]
    if not cells:
        raise UserError(f"{source}: nothing to run (no models, tasks or seeds)")
    return cells


def model_config(model: str, section: dict, where: str, source: str) -> ModelConfig:
    """The model's own Config from the shared `model:` section: a key another model has is left to it."""
    known = {f.name: None for m in MODELS.values() for f in dataclasses.fields(m.Config)}
    for key in section:
        if key not in known:
            raise UserError(f"{source}: {where}.{key}: unknown key; allowed here: {', '.join(known)}")
    mine = {f.name for f in dataclasses.fields(MODELS[model].Config)}
    return validated(MODELS[model].Config, {k: v for k, v in section.items() if k in mine}, where, source)


def with_inits(cells: list[Cell], inits, source: str) -> list[Cell]:
    """Each cell once per scheme in `inits` ("all": every scheme) that its model supports."""
    from suite.models import init_schemes
    from suite.models.init import SCHEMES

    wanted = list(SCHEMES) if inits == "all" or inits == ["all"] else list(inits)
    for scheme in wanted:
        if scheme not in SCHEMES:
            raise UserError(f"--inits: unknown scheme '{scheme}'; known: all, {', '.join(SCHEMES)}")
    out = [dataclasses.replace(c, model_cfg=dataclasses.replace(c.model_cfg, init=s))
           for c in cells for s in wanted if s in init_schemes(c.model)]
    if not out:
        raise UserError(f"--inits: none of the models supports {', '.join(wanted)}")
    return out


def validated_section(cls, raw: dict, key: str, source: str):
    """A top-level section (e.g. `tune:`) as its dataclass."""
    return validated(cls, section(raw.get(key), key, source), key, source)


def section(value, where, source) -> dict:
    """A section of settings (None: empty), or one line naming it."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{source}: {where}: expected a mapping of settings (got {value!r})")
    return value


def _list(value, where, source) -> list:
    if not isinstance(value, list):
        raise UserError(f"{source}: {where}: expected a list (got {value!r})")
    return value
