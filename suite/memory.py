"""Sizes no machine here can hold, refused before any run exists: a lower bound on the memory a cell needs to
train, against the memory there is (the CUDA device's, else the machine's RAM).

The bound counts only what every model keeps, in float32: the parameters with their gradients and Adam's two
moments (16 bytes a parameter, counted on the meta device), one hidden state a step, layer and sequence of a
batch for the backward pass, and the generated validation and test sets with one batch of inputs. Real use is
higher (gates, attention, the framework), so a cell refused here could never have run; one let through may still
run out, mid-run, as it would have anyway.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math

GB = 1 << 30


def needed(cell, task, cfg) -> dict[str, float]:
    """The lower bound's parts in bytes, for `cell` on its task (built) with its model settings `cfg` (the hidden
    size solved for a param_budget): parameters, activations and data."""
    layers, steps, train = getattr(cfg, "num_layers", 1), task.input_steps, cell.train
    return {"parameters and Adam state": 16.0 * _params(cell.model, json.dumps(dataclasses.asdict(cfg)),
                                                        task.input_size, task.n_outputs),
            "activations": 4.0 * train.batch_size * steps * cfg.hidden_size * layers,
            "data": 4.0 * (train.n_val + train.n_test + train.batch_size) * steps * task.input_size}


@functools.lru_cache(maxsize=None)
def _params(model: str, cfg_json: str, inputs: int, outputs: int) -> float:
    """Parameters, counted once per process per model, settings and task shape. A deep stack is counted at one
    and two layers and extended (the layers above the first are alike), not built layer by layer."""
    from suite.models import MODELS
    from suite.models.network import count_params

    cfg = json.loads(cfg_json)
    count = lambda layers: count_params(model, MODELS[model].Config(**(cfg | layers)), inputs, outputs)  # noqa: E731
    try:
        if cfg.get("num_layers", 1) <= 2:
            return count({})
        one, two = count({"num_layers": 1}), count({"num_layers": 2})
        return one + (cfg["num_layers"] - 1) * (two - one)
    except (RuntimeError, OverflowError, TypeError, ValueError):  # a size torch cannot even describe (overflow)
        return math.inf


def _gb(n: float) -> str:
    n = min(n, 2.0**63)  # past what torch can count
    return f"{n / GB:,.1f} GB" if n < 1e6 * GB else f"{n / GB:.1e} GB"


def there_is(device: str) -> tuple[float, str]:
    """(bytes, what they are) of the memory a cell on `device` trains in."""
    if device == "cuda":
        import torch

        return float(torch.cuda.get_device_properties(0).total_memory), "on the CUDA device"
    import psutil

    return float(psutil.virtual_memory().total), "of RAM on this machine"


def check_memory(cell, task, cfg, device: str, source: str):
    """One line naming the settings and the memory when the cell cannot fit (suite/errors.UserError)."""
    from suite.errors import UserError

    parts = needed(cell, task, cfg)
    total, where = there_is(device)
    if sum(parts.values()) <= total:
        return
    biggest = max(parts, key=parts.get)
    keys = {"parameters and Adam state": f"model.hidden_size={cell.model_cfg.hidden_size}",
            "activations": f"train.batch_size={cell.train.batch_size}, task seq_len={cell.seq_len}, "
                           f"model.hidden_size={cell.model_cfg.hidden_size}",
            "data": f"train.n_val={cell.train.n_val}, train.n_test={cell.train.n_test}, task seq_len={cell.seq_len}"}
    raise UserError(f"{source}: {cell.label} needs at least {_gb(sum(parts.values()))} to train ({biggest} "
                    f"{_gb(parts[biggest])}, from {keys[biggest]}) and there are {_gb(total)} {where}; lower those "
                    "settings")
