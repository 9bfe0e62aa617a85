"""Search spaces: the train.* ranges every model shares plus the model's own (its `search_space`), or a YAML."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from suite.config import Cell
from suite.errors import UserError
from suite.yamlio import read_yaml

# Every model searches these, so the same effort goes into each; model.param_budget stays as the profile
# sets it, so tuned models remain matched in size.
TRAIN_SPACE = {
    "train.lr": {"low": 3e-4, "high": 1e-2, "log": True},
    "train.grad_clip": {"low": 0.25, "high": 4.0, "log": True},
    "train.weight_decay": {"low": 1e-6, "high": 1e-2, "log": True},
    "train.batch_size": {"choices": [64, 128, 256]},
}


@dataclasses.dataclass(frozen=True)
class Param:
    key: str  # a config path, as in --set: train.lr, model.heads, task.seq_len
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple | None = None

    def suggest(self, trial):
        if self.choices is not None:
            return trial.suggest_categorical(self.key, list(self.choices))
        integers = all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high))
        if integers and self.step in (None, 1):
            return trial.suggest_int(self.key, self.low, self.high, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)


def default_space(model: str) -> dict:
    from suite.models import MODELS

    return {**TRAIN_SPACE, **getattr(MODELS[model], "search_space", {})}


def load_space(model: str, cells: list[Cell], path: str | None = None) -> list[Param]:
    """The model's search space (or the YAML at `path`), each end of each range checked on each of its cells as a
    setting of that cell (Cell.overridden)."""
    where_from = str(path) if path else f"{model}'s search space"
    if path:
        data = read_yaml(Path(path), "--space")
        if not isinstance(data, dict) or not data:
            raise UserError(f"{path}: expected a mapping of config paths to ranges")
    else:
        data = default_space(model)
    space = []
    for key, spec in data.items():
        where = f"{where_from}: {key}"
        if not isinstance(spec, dict):
            raise UserError(f"{where}: expected {{low: .., high: ..}} or {{choices: [..]}}")
        unknown = set(spec) - {"low", "high", "log", "step", "choices"}
        if unknown:
            raise UserError(f"{where}: unknown key {sorted(unknown)[0]}; allowed: low, high, log, step, choices")
        if "choices" in spec:
            if not isinstance(spec["choices"], list) or not spec["choices"]:
                raise UserError(f"{where}.choices: expected a non-empty list")
            param, probes = Param(key, choices=tuple(spec["choices"])), spec["choices"]
        else:
            low, high = spec.get("low"), spec.get("high")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
                raise UserError(f"{where}: needs numeric low and high (or choices)")
            if low >= high:
                raise UserError(f"{where}: low ({low}) must be below high ({high})")
            if spec.get("log") and low <= 0:
                raise UserError(f"{where}: a log range needs low > 0 (got {low})")
            param, probes = Param(key, low, high, bool(spec.get("log")), spec.get("step")), [low, high]
        for value in probes:  # every end of the range must make a valid cell
            for cell in cells:
                cell.overridden({key: value}, f"{where_from} ({key}={value})")
        space.append(param)
    return space


def with_params(cell: Cell, params: dict) -> Cell:
    """The cell with a trial's (or a study's best) parameters applied, validated like any config."""
    return cell.overridden(params, "search space")
