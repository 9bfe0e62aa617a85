"""The settings of an experiment as typed, validated dataclasses, and a Cell: one run of the matrix.

Loading them from YAML is suite/experiment.py; a model's own settings are its Config (suite/models/).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Annotated, Literal

from pydantic import Field, StrictStr, ValidationError
from pydantic.dataclasses import dataclass

from suite.errors import UserError
from suite.models import MODELS, ModelConfig
from suite.schema import STRICT, NonNegFloat, NonNegInt, PosFloat, PosInt
from tasks import TASKS

UNHASHED = ("checkpoint_minutes", "system_metrics")  # train settings that do not change a run's result


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
    eval_seq_lens: list[PosInt] = dataclasses.field(default_factory=list)  # also test at these lengths
    max_minutes: PosFloat | None = None  # wall-clock budget a run (None: epochs decide)
    gradflow: bool = False  # record ‖∂L/∂h_t‖ per step at initialisation and after training
    checkpoint_minutes: PosFloat | None = 10.0  # save a resumable checkpoint to the run this often (None: never)
    system_metrics: bool = True  # CPU/GPU use and memory every 10 s, MLflow's own system/* metrics


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
    optuna_storage: StrictStr | None = None  # Optuna storage URL or journal path (--storage, env var win)


@dataclass(config=STRICT)
class HorizonConfig:
    ladders: dict[str, list[PosInt]] = dataclasses.field(default_factory=dict)  # task -> lengths T
    seeds: PosInt = 1  # seeds a length
    budget_steps: PosInt | None = None  # optimizer steps a run (None: the task's epochs x steps_per_epoch)
    budget_minutes: PosFloat | None = None  # or wall-clock minutes a run
    min_share: Annotated[float, Field(gt=0, le=1)] = 0.51  # share of seeds that must solve a length (a majority)

    def ladder(self, task: str) -> list[int]:
        """The lengths to sweep: the experiment's `horizon: {task: [..]}`, else the task's own ladder."""
        return list(self.ladders.get(task) or TASKS[task].horizon)


@dataclasses.dataclass(frozen=True)
class Cell:
    """One run of the matrix: a model on a task at one length and seed."""

    model: str
    task: str
    seed: int
    model_cfg: ModelConfig  # the model's own Config
    task_cfg: object
    train: TrainConfig

    def make_task(self):
        return TASKS[self.task](self.task_cfg)

    @property
    def seq_len(self) -> int:
        return self.make_task().seq_len

    @property
    def variant(self) -> str:
        return self.make_task().variant()

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
    def code_fingerprint(self) -> str:
        """The code the cell's result depends on (suite/fingerprint.py): with config_hash, what "finished" means."""
        from suite.fingerprint import code_fingerprint

        return code_fingerprint(self.model, self.task)

    @property
    def model_label(self) -> str:
        """The model, and its init scheme when that is not the model's default."""
        init = getattr(self.model_cfg, "init", None)
        default = {f.name: f.default for f in dataclasses.fields(type(self.model_cfg))}.get("init")
        return f"{self.model} · {init}" if init != default else self.model

    @property
    def label(self) -> str:
        return f"{self.model_label} · {self.task} T={self.seq_len} · seed {self.seed}"


def cell_from_resolved(resolved: dict) -> Cell:
    """A cell back from a run's config.yaml (Cell.resolved() as logged)."""
    model, task = dict(resolved["model"]), dict(resolved["task"])
    model_name, task_name = model.pop("name"), task.pop("name")
    return Cell(model_name, task_name, resolved["seed"], MODELS[model_name].Config(**model),
                TASKS[task_name].Config(**task), TrainConfig(**resolved["train"]))


def model_config(model: str, section: dict, where: str, source: str) -> ModelConfig:
    """The model's own Config from the shared `model:` section: a key another model has is left to it."""
    known = {f.name: None for m in MODELS.values() for f in dataclasses.fields(m.Config)}
    for key in section:
        if key not in known:
            raise UserError(f"{source}: {where}.{key}: unknown key; allowed here: {', '.join(known)}")
    mine = {f.name for f in dataclasses.fields(MODELS[model].Config)}
    return build(MODELS[model].Config, {k: v for k, v in section.items() if k in mine}, where, source)


def horizon_config(section: dict, source: str) -> HorizonConfig:
    """`horizon:` holds the sweep's settings and a ladder per task with a length (e.g. copy: [50, 100])."""
    ladders, rest = {}, {}
    for key, value in section.items():
        if key in TASKS:
            if not TASKS[key].has_length():
                raise UserError(f"{source}: horizon.{key}: {key} has a fixed length; ladders are for tasks with a "
                                f"seq_len: {', '.join(t for t, c in TASKS.items() if c.has_length())}")
            ladders[key] = value
        elif key == "ladders" or key not in {f.name for f in dataclasses.fields(HorizonConfig)}:
            allowed = [f.name for f in dataclasses.fields(HorizonConfig) if f.name != "ladders"]
            raise UserError(f"{source}: horizon.{key}: unknown key; allowed here: "
                            f"{', '.join(allowed + [t for t, c in TASKS.items() if c.has_length()])}")
        else:
            rest[key] = value
    cfg = build(HorizonConfig, rest, "horizon", source)
    for task, ladder in ladders.items():  # each ladder checked as a list of lengths, with its key path
        checked = build(HorizonConfig, {"ladders": {task: ladder}}, "horizon", source).ladders[task]
        cfg.ladders[task] = checked
    return cfg


def build(cls, data: dict, where: str, source: str):
    """cls(**data), with a pydantic error turned into one line naming the key path."""
    try:
        return cls(**data)
    except ValidationError as err:
        e = err.errors()[0]
        loc = [str(p) for p in e["loc"] if not (isinstance(p, str) and p[:1].isupper())]
        if loc[:1] == ["ladders"]:
            loc = loc[1:]
        path = ".".join([where, *loc]).strip(".")
        if e["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
            allowed = ", ".join(f.name for f in dataclasses.fields(cls))
            raise UserError(f"{source}: {path}: unknown key; allowed here: {allowed}") from None
        raise UserError(f"{source}: {path}: {e['msg']} (got {e['input']!r})") from None
    except (TypeError, ValueError) as err:
        raise UserError(f"{source}: {where}: {err}") from None
