"""Experiment YAML -> validated cells. One file an experiment; every value traceable to it or a default."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, StrictStr, ValidationError
from pydantic.dataclasses import dataclass

from suite.errors import UserError
from suite.models import MODELS, ModelConfig
from suite.schema import STRICT, NonNegFloat, NonNegInt, PosFloat, PosInt
from tasks import TASKS

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
PROFILES = ("smoke", "cpu", "full")
TOP_KEYS = ("models", "seeds", "model", "train", "tasks", "tune", "horizon", "stores")
UNHASHED = ("checkpoint_minutes",)  # train settings that do not change a run's result
ENTRY_KEYS = ("model", "train")  # per-task overrides, beside the task's own settings


@dataclass(config=STRICT)
class TrainConfig:
    epochs: PosInt = 10  # passes over the train set; for synthetic tasks, of steps_per_epoch batches
    steps_per_epoch: PosInt | None = None  # synthetic tasks: batches an epoch (100 when unset); MNIST: a cap
    batch_size: PosInt = 128
    eval_batch_size: PosInt = 512
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: PosFloat = 1e-3
    weight_decay: NonNegFloat = 0.0
    grad_clip: PosFloat | None = 1.0  # max gradient norm; None: no clipping
    n_val: PosInt = 1_000  # synthetic tasks: validation sequences (fixed seed)
    n_test: PosInt = 2_000  # synthetic tasks: test sequences (fixed seed)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: cuda when available
    precision: Literal["auto", "32-true", "bf16-mixed"] = "auto"  # auto: bf16-mixed on cuda, else 32-true
    warmup_steps: NonNegInt = 5  # first optimizer steps left out of train_samples_per_s
    steps_per_call: PosInt = 8  # optimizer steps per Lightning training_step call (Keras' steps_per_execution)
    stop_when_solved: NonNegInt = 3  # stop after this many solved validations in a row (0: never stop early)
    eval_seq_lens: list[PosInt] = dataclasses.field(default_factory=list)  # also test at these lengths (copy, adding)
    max_minutes: PosFloat | None = None  # wall-clock budget a run (None: epochs decide)
    gradflow: bool = False  # record ‖∂L/∂h_t‖ per step at initialisation and after training
    checkpoint_minutes: PosFloat | None = 10.0  # save a resumable checkpoint to the run this often (None: never)


@dataclass(config=STRICT)
class TuneConfig:
    trials: PosInt = 20  # per model x task: every model gets the same number
    pruner: Literal["median", "hyperband", "none"] = "median"  # fed val_loss after every epoch
    startup_trials: NonNegInt = 3  # median pruner: trials that always run to the end first
    warmup_epochs: NonNegInt = 1  # median pruner: epochs before a trial may be pruned
    sampler_seed: int = 0  # TPE sampler seed (worker i uses seed + i)


@dataclass(config=STRICT)
class StoresConfig:
    tracking_uri: StrictStr | None = None  # MLflow store or server (--tracking-uri and $MLFLOW_TRACKING_URI win)
    optuna_storage: StrictStr | None = None  # Optuna storage URL or journal path (--storage, $RNNBENCH_OPTUNA_STORAGE win)


@dataclass(config=STRICT)
class HorizonConfig:
    copy: list[PosInt] = dataclasses.field(default_factory=lambda: [50, 100])  # the ladder of lengths T
    adding: list[PosInt] = dataclasses.field(default_factory=lambda: [50, 100])
    seeds: PosInt = 1  # seeds a length
    budget_steps: PosInt | None = None  # optimizer steps a run (None: the task's epochs x steps_per_epoch)
    budget_minutes: PosFloat | None = None  # or wall-clock minutes a run
    min_share: Annotated[float, Field(gt=0, le=1)] = 0.51  # share of seeds that must solve a length (a majority)


@dataclasses.dataclass(frozen=True)
class Cell:
    """One run of the matrix: a model on a task at one length and seed."""

    model: str
    task: str
    seed: int
    model_cfg: ModelConfig
    task_cfg: object
    train: TrainConfig

    @property
    def seq_len(self) -> int:
        return TASKS[self.task](self.task_cfg).seq_len

    def resolved(self) -> dict:
        """The whole configuration of this run, as logged and hashed."""
        return {"model": {"name": self.model, **dataclasses.asdict(self.model_cfg)},
                "task": {"name": self.task, **dataclasses.asdict(self.task_cfg)},
                "train": dataclasses.asdict(self.train), "seed": self.seed}

    @property
    def config_hash(self) -> str:
        """Names the cell's result: settings that cannot change it (see UNHASHED) are left out."""
        resolved = self.resolved()
        resolved["train"] = {k: v for k, v in resolved["train"].items() if k not in UNHASHED}
        return hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        return f"{self.model} · {self.task} T={self.seq_len} · seed {self.seed}"


def cell_from_resolved(resolved: dict) -> Cell:
    """A cell back from a run's config.yaml (Cell.resolved() as logged)."""
    model, task = dict(resolved["model"]), dict(resolved["task"])
    model_name, task_name = model.pop("name"), task.pop("name")
    return Cell(model_name, task_name, resolved["seed"], ModelConfig(**model), TASKS[task_name].Config(**task),
                TrainConfig(**resolved["train"]))


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
    if not path.is_file():
        raise UserError(f"--config: {path} not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}:{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of settings at the top level")
    return data, name, str(path)


def apply_sets(raw: dict, sets: list[str]) -> dict:
    """`--set key.path=value` overrides (values parsed as YAML); `task.x` applies to every task."""
    raw = json.loads(json.dumps(raw))  # a deep copy
    for item in sets:
        key, eq, text = item.partition("=")
        if not eq or not key:
            raise UserError(f"--set: '{item}' is not key=value (e.g. --set train.lr=0.003)")
        value = yaml.safe_load(text)
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
    _no_unknown(raw, TOP_KEYS, "", source)
    models = raw.get("models", list(MODELS))
    if isinstance(models, str):
        models = [models]
    for m in _list(models, "models", source):
        if m not in MODELS:
            raise UserError(f"{source}: models: unknown model '{m}'; known: {', '.join(MODELS)}")
    seeds = _list(raw.get("seeds", [0]), "seeds", source)
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise UserError(f"{source}: seeds: expected a list of non-negative integers (got {seeds})")
    tasks = raw.get("tasks") or {t: {} for t in TASKS}
    if not isinstance(tasks, dict):
        raise UserError(f"{source}: tasks: expected a mapping of task name to settings")
    cells = []
    for task_name, entry in tasks.items():
        if task_name not in TASKS:
            raise UserError(f"{source}: tasks.{task_name}: unknown task; known: {', '.join(TASKS)}")
        entry = dict(entry or {})
        where = f"tasks.{task_name}"
        _section(entry, where, source)
        model_raw = {**_section(raw.get("model"), "model", source), **_section(entry.pop("model", None), f"{where}.model", source)}
        train_raw = {**_section(raw.get("train"), "train", source), **_section(entry.pop("train", None), f"{where}.train", source)}
        model_cfg = build(ModelConfig, model_raw, "model", source)
        train = build(TrainConfig, train_raw, "train", source)
        lengths = entry.pop("seq_len", None)
        for seq_len in lengths if isinstance(lengths, list) else [lengths]:
            settings = entry if seq_len is None else {**entry, "seq_len": seq_len}
            task_cfg = build(TASKS[task_name].Config, settings, where, source)
            if train.eval_seq_lens and not hasattr(task_cfg, "seq_len"):
                raise UserError(f"{source}: train.eval_seq_lens: {task_name} has a fixed length; use it with copy or adding")
            cells += [Cell(m, task_name, s, model_cfg, task_cfg, train) for s in seeds for m in models]
    if not cells:
        raise UserError(f"{source}: nothing to run (no models, tasks or seeds)")
    return cells


def horizon_config(raw: dict, source: str = "config") -> HorizonConfig:
    """The experiment's `horizon:` section: the length ladders and the budget of a sweep."""
    return build(HorizonConfig, _section(raw.get("horizon"), "horizon", source), "horizon", source)


def stores_config(raw: dict, source: str = "config") -> StoresConfig:
    """The experiment's `stores:` section: where runs and studies go when no flag or variable says."""
    return build(StoresConfig, _section(raw.get("stores"), "stores", source), "stores", source)


def tune_config(raw: dict, source: str = "config") -> TuneConfig:
    """The experiment's `tune:` section: the budget every model gets."""
    return build(TuneConfig, _section(raw.get("tune"), "tune", source), "tune", source)


def build(cls, data: dict, where: str, source: str):
    """cls(**data), with a pydantic error turned into one line naming the key path."""
    try:
        return cls(**data)
    except ValidationError as err:
        e = err.errors()[0]
        path = ".".join([where, *(str(p) for p in e["loc"] if not (isinstance(p, str) and p[0].isupper()))]).strip(".")
        if e["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
            allowed = ", ".join(f.name for f in dataclasses.fields(cls))
            raise UserError(f"{source}: {path}: unknown key; allowed here: {allowed}") from None
        raise UserError(f"{source}: {path}: {e['msg']} (got {e['input']!r})") from None
    except (TypeError, ValueError) as err:
        raise UserError(f"{source}: {where}: {err}") from None


def _section(value, where, source) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{source}: {where}: expected a mapping of settings (got {value!r})")
    return value


def _list(value, where, source) -> list:
    if not isinstance(value, list):
        raise UserError(f"{source}: {where}: expected a list (got {value!r})")
    return value


def _no_unknown(raw: dict, allowed, where, source):
    for key in raw:
        if key not in allowed:
            raise UserError(f"{source}: {where}{key}: unknown key; allowed here: {', '.join(allowed)}")
