"""The settings of an experiment as typed, validated dataclasses, and a Cell: one run of the matrix.

Loading them from YAML is suite/experiment.py; a model's own settings are its Config (suite/models/).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from typing import Annotated, Literal

from pydantic import Field, StrictStr, ValidationError
from pydantic.dataclasses import dataclass

from suite.errors import UserError
from suite.memory import check_memory
from suite.models import MODELS, ModelConfig, resolve
from suite.schema import STRICT, NonNegFloat, NonNegInt, PosFloat, PosInt, Share
from tasks import TASKS

UNHASHED = ("checkpoint_minutes", "system_metrics")  # train settings that do not change a run's result
BATCHES_PER_EPOCH = 100  # a generated task's epoch when train.steps_per_epoch is unset
_TASKS: dict[tuple[type, str], object] = {}  # Cell.shared_task's instances, by task and settings


@dataclass(config=STRICT)
class TrainConfig:
    epochs: PosInt = 10  # passes over the train set; for generated tasks, of steps_per_epoch batches
    steps_per_epoch: PosInt | None = None  # generated tasks: batches an epoch (100 when unset); MNIST: a cap
    batch_size: PosInt = 128
    eval_batch_size: PosInt = 512
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: PosFloat = 1e-3
    weight_decay: NonNegFloat = 0.0
    grad_clip: PosFloat | None = 1.0  # max gradient norm; None: no clipping
    n_val: PosInt = 1_000  # generated tasks: validation sequences (fixed seed)
    n_test: PosInt = 2_000  # generated tasks: test sequences (fixed seed)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: cuda when available
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"] = "auto"  # auto: suite/precision.py
    warmup_steps: NonNegInt = 5  # first optimizer steps left out of train_samples_per_s
    steps_per_call: PosInt = 8  # optimizer steps per Lightning training_step call (Keras' steps_per_execution)
    stop_when_solved: NonNegInt = 3  # stop after this many solved validations in a row (0: never stop early)
    eval_seq_lens: list[PosInt] = dataclasses.field(default_factory=list)  # also test at these lengths
    test_at: list[Share] = dataclasses.field(default_factory=lambda: [0.25, 0.5])  # also test at these shares of
    # the epochs (the epoch nearest each): what a smaller budget would have scored, at no extra training
    max_minutes: PosFloat | None = None  # wall-clock budget per run (None: epochs decide)
    gradflow: bool = False  # record ‖∂L/∂h_t‖ per step at initialisation and after training
    checkpoint_minutes: PosFloat | None = 10.0  # save a resumable checkpoint to the run this often (None: never)
    system_metrics: bool = True  # CPU/GPU use and memory every 10 s, MLflow's own system/* metrics

    @property
    def batches_per_epoch(self) -> int:
        """A generated task's batches an epoch."""
        return self.steps_per_epoch or BATCHES_PER_EPOCH


@dataclass(config=STRICT)
class TuneConfig:
    trials: PosInt = 20  # per model x task: every model gets the same number
    pruner: Literal["median", "hyperband", "none"] = "median"  # fed val_loss after every epoch
    startup_trials: NonNegInt = 3  # median pruner: trials that always run to the end first
    warmup_epochs: NonNegInt = 1  # median pruner: epochs before a trial may be pruned
    sampler_seed: int = 0  # TPE's seed: trial n of a study samples with a seed from it, the study and n


@dataclass(config=STRICT)
class StoresConfig:
    tracking_uri: StrictStr | None = None  # MLflow store or server (--tracking-uri and $MLFLOW_TRACKING_URI win)
    optuna_storage: StrictStr | None = None  # Optuna storage URL or journal path (--storage, env var win)


@dataclass(config=STRICT)
class HorizonConfig:
    ladders: dict[str, list[PosInt]] = dataclasses.field(default_factory=dict)  # task -> lengths T
    seeds: PosInt = 1  # seeds per length
    budget_steps: PosInt | None = None  # optimizer steps per run (None: the task's epochs x steps_per_epoch)
    budget_minutes: PosFloat | None = None  # or wall-clock minutes per run
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
    recipe: str = ""  # the recipe search that chose its train.*/model.* values (suite/recipe.py); "": pinned

    def make_task(self):
        return TASKS[self.task](self.task_cfg)

    @functools.cached_property
    def shared_task(self):
        """The task, for reading its shapes and lengths: one instance for every cell of the same task settings
        (some build tables: the permutation task's group is 45 ms, 840 times over in the full profile)."""
        key = (TASKS[self.task], json.dumps(dataclasses.asdict(self.task_cfg), sort_keys=True))
        return _TASKS[key] if key in _TASKS else _TASKS.setdefault(key, self.make_task())

    @property
    def seq_len(self) -> int:
        return self.shared_task.seq_len

    @property
    def variant(self) -> str:
        return self.shared_task.variant()

    def resolved(self) -> dict:
        """The whole configuration of this run, as logged and hashed."""
        recipe = {"recipe": self.recipe} if self.recipe else {}
        return {"model": {"name": self.model, **dataclasses.asdict(self.model_cfg)},
                "task": {"name": self.task, **dataclasses.asdict(self.task_cfg)},
                "train": dataclasses.asdict(self.train), "seed": self.seed, **recipe}

    @functools.cached_property
    def config_hash(self) -> str:
        """Names the cell's result: settings that cannot change it (see UNHASHED) are left out."""
        resolved = self.resolved()
        resolved["train"] = {k: v for k, v in resolved["train"].items() if k not in UNHASHED}
        return hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def setting_key(self) -> tuple:
        """The cell without its seed: the cells of one setting (and one model's settings) share it."""
        resolved = self.resolved()
        del resolved["seed"]
        return self.model, json.dumps(resolved, sort_keys=True)

    @property
    def code_fingerprint(self) -> str:
        """The code the cell's result depends on (suite/fingerprint.py): with config_hash, what "finished" means."""
        from suite.fingerprint import code_fingerprint

        return code_fingerprint(self.model, self.task)

    @property
    def tags(self) -> dict[str, str]:
        """What names the cell on its run, as the scores and the report read it back."""
        variant = {"variant": self.variant} if self.variant else {}
        recipe = {"recipe": "searched", "recipe_search": self.recipe} if self.recipe else {"recipe": "pinned"}
        return {"model": self.model, "task": self.task, "seq_len": str(self.seq_len), **variant,
                "init": getattr(self.model_cfg, "init", "torch"), "seed": str(self.seed), **recipe,
                "config_hash": self.config_hash, "code_fingerprint": self.code_fingerprint}

    @property
    def planned_steps(self) -> int:
        """Optimizer steps the cell's training takes (an epoch of a dataset task: its examples over the batch)."""
        tc, examples = self.train, self.shared_task.train_examples()
        if examples is None:
            return tc.epochs * tc.batches_per_epoch
        return tc.epochs * min(math.ceil(examples / tc.batch_size), tc.steps_per_epoch or math.inf)

    @functools.cached_property
    def cost(self) -> float:
        """The cell's relative work: examples trained on plus those evaluated (at ~1/3 the price), times input
        steps; what the ETA and the packing's order weigh cells by."""
        evaluated = self.train.n_val * self.train.epochs + self.train.n_test
        return (self.planned_steps * self.train.batch_size + evaluated / 3) * self.shared_task.input_steps

    @property
    def model_label(self) -> str:
        """The model, and its init scheme when that is not the model's default."""
        init = getattr(self.model_cfg, "init", None)
        default = {f.name: f.default for f in dataclasses.fields(type(self.model_cfg))}.get("init")
        return f"{self.model} · {init}" if init != default else self.model

    @property
    def label(self) -> str:
        return f"{self.model_label} · {self.task} T={self.seq_len} · seed {self.seed}"

    def overridden(self, values: dict, source: str) -> Cell:
        """This cell with some settings changed, e.g. {"task.seq_len": 50, "train.lr": 0.01, "seed": 2}: keys are
        config paths as in --set (model.*, task.*, train.*) or "seed", each checked as --set's are, with the key's
        path in a one-line error from `source`."""
        sections = {"model": dataclasses.asdict(self.model_cfg), "task": dataclasses.asdict(self.task_cfg),
                    "train": dataclasses.asdict(self.train)}
        seed = self.seed
        for key, value in values.items():
            head, _, name = key.partition(".")
            if key == "seed":
                seed = checked_seed(value, source)
            elif head not in sections or not name or "." in name:
                raise UserError(f"{source}: {key}: keys are model.<key>, task.<key>, train.<key> or seed")
            elif name not in sections[head]:
                raise UserError(f"{source}: {key}: unknown key for {self.model} on {self.task}; allowed here: "
                                f"{', '.join(sections[head])}")
            else:
                sections[head][name] = value
        cell = Cell(self.model, self.task, seed,
                    validated(MODELS[self.model].Config, sections["model"], "model", source),
                    validated(TASKS[self.task].Config, sections["task"], "task", source),
                    validated(TrainConfig, sections["train"], "train", source), self.recipe)
        cell.check(source)
        return cell

    def check(self, source: str):
        """What only the whole cell can tell, found before any run exists: a CUDA device asked for and not there,
        other test lengths for a task without one, a param_budget the model cannot meet, a size no memory here
        holds (suite/memory.py)."""
        device = device_of(self.train.device, source)
        if self.train.eval_seq_lens and not TASKS[self.task].has_length():
            raise UserError(f"{source}: train.eval_seq_lens: {self.task} has a fixed length; use it with a task that "
                            "has a seq_len")
        cfg = sized(self.model, self.model_cfg, (task := self.shared_task).input_size, task.n_outputs)  # solved
        check_memory(self, task, cfg, device, source)  # (which imports Lightning)


def device_of(device: str, source: str | None = None) -> str:
    """train.device as trained on: auto is cuda when a CUDA device is visible, else cpu; cuda without one refused."""
    if device == "cuda" and not _cuda():
        raise UserError(f"{source + ': ' if source else ''}train.device: cuda asked for but no CUDA device is "
                        "visible; use auto or cpu")
    return "cuda" if device == "cuda" or (device == "auto" and _cuda()) else "cpu"


@functools.lru_cache(maxsize=None)
def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def sized(model: str, cfg: ModelConfig, input_size: int, n_outputs: int) -> ModelConfig:
    """resolve(model, cfg, ...): cfg with its hidden size solved for param_budget, once per process per model,
    settings and task shape (a UserError when it cannot be)."""
    if cfg.param_budget is None:
        return cfg
    hidden = _sized(model, json.dumps(dataclasses.asdict(cfg) | {"init": None}, sort_keys=True), input_size,
                    n_outputs)
    return dataclasses.replace(cfg, hidden_size=hidden)


@functools.lru_cache(maxsize=None)
def _sized(model: str, cfg_json: str, input_size: int, n_outputs: int) -> int:
    cfg = {k: v for k, v in json.loads(cfg_json).items() if k != "init"}
    return resolve(model, MODELS[model].Config(**cfg), input_size, n_outputs).hidden_size


def checked_seed(value, source: str) -> int:
    """A cell's `seed`, or one line naming it."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise UserError(f"{source}: seed: expected a non-negative integer (got {value!r})")
    return value


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
    cfg = validated(HorizonConfig, rest, "horizon", source)
    for task, ladder in ladders.items():  # each ladder checked as a list of lengths, with its key path
        cfg.ladders[task] = validated(HorizonConfig, {"ladders": {task: ladder}}, "horizon", source).ladders[task]
    return cfg


def validated(cls, data: dict, where: str, source: str):
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
