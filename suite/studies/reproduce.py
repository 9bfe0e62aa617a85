"""`rnnbench reproduce NAME`: a reference result run (or quoted) beside ours, on the same data and seeds.

Each entry of REPRODUCTIONS names our experiment file, the metric, the tolerance and where the reference
comes from: a reference implementation run here, seed by seed (`reference`), or a published figure with
its protocol written into our experiment file (`published`). One parent MLflow run a reproduction (role
`reproduction`) holds our runs and the reference runs, with both means, their difference and the verdict.
"""
from __future__ import annotations

import dataclasses
import os
import statistics
from pathlib import Path
from typing import Callable

from suite.errors import UserError

CONFIGS = Path(__file__).resolve().parent.parent.parent / "configs" / "experiments"


@dataclasses.dataclass(frozen=True)
class Reproduction:
    what: str  # one line: what is compared with what
    config: str  # our side: an experiment file in configs/experiments/
    metric: str  # the metric both sides report, as ours names it (test_acc, test_mse)
    tolerance: float  # the means may differ by this much
    source: str  # where the reference comes from
    reference: Callable | None = None  # (seed, cell) -> the reference's metric for that seed, run here
    published: float | None = None  # or the published figure itself
    direction: tuple[str, str] | None = None  # or a claim between two of our models: (the winner, the loser)


def keras_tutorial(seed: int, cell) -> float:
    """The tutorial's model in Keras 3 (torch backend): SimpleRNN(50) x 2, Dense(10), Adam 1e-3, batch 128,
    on our split of the same digits, scaled to [0, 1], rows as steps."""
    keras = import_keras()
    from tasks._mnist import load_mnist

    splits, _ = load_mnist(cell.task_cfg)
    (x, y), (xt, yt) = (splits[s] for s in ("train", "test"))
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.SimpleRNN(50, return_sequences=True),
                              keras.layers.SimpleRNN(50), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x / 255.0, y, batch_size=cell.train.batch_size, epochs=cell.train.epochs, shuffle=True, verbose=0)
    return float(model.evaluate(xt / 255.0, yt, verbose=0)[1])


REPRODUCTIONS = {
    "mamba-selective-copy": Reproduction(
        what="Mamba Table 1's direction: the selective recurrence (mamba, S6) solves selective copying where the "
             "time-invariant one (s4d) does not, at a scale 2 CPU cores run (configs/experiments/"
             "mamba_selective_copy.yaml says where it differs from the paper's protocol)",
        config="mamba_selective_copy.yaml", metric="test_acc", tolerance=0.0, direction=("mamba", "s4d"),
        source="Gu & Dao 2023, arXiv:2312.00752, Table 1 (L=4096: S4 18.3%, S6 97.0% without gating, Mamba "
               "99.8%); the winner must beat the loser beyond seed noise (Welch's test, 3 seeds)"),
    "mamba-table1": Reproduction(
        what="Mamba's own Table 1 row at its protocol (App. E.1: L=4096, 16 tokens, 2 layers of D=64, 400k steps): "
             "GPU hours, for a cluster",
        config="mamba_table1.yaml", metric="test_acc", tolerance=0.02, published=0.998,
        source="Gu & Dao 2023, arXiv:2312.00752, Table 1: Mamba 99.8 (accuracy over the 16 recalled tokens, "
               "per-token scoring assumed; the paper does not say)"),
    "keras-seed": Reproduction(
        what="the Keras tutorial this project grew from, in Keras itself, against configs/experiments/keras_seed.yaml",
        config="keras_seed.yaml", metric="test_acc", tolerance=0.02, reference=keras_tutorial,
        source="Keras 3 (torch backend) running the tutorial's model, seed by seed"),
}


def import_keras():
    """Keras 3 on the torch backend (the optional extra `repro`), or one line saying how to get it."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        raise UserError("reproduce: needs Keras 3, the `repro` extra: `make reproduce`, or "
                        "`.venv/bin/pip install -e '.[repro]'`") from None
    if keras.backend.backend() != "torch":
        raise UserError(f"reproduce: Keras runs on {keras.backend.backend()}; set KERAS_BACKEND=torch")
    return keras


def reproduce(name: str, seeds: int = 3, epochs: int | None = None, tracking: str | None = None,
              experiment: str | None = None, force: bool = False, jobs=(None, None)) -> int:
    """Run both sides over `seeds` seeds (our cells packed as --jobs asks); exit 0 when the means agree within
    the tolerance (or the claimed winner wins), else 1."""
    from suite.benchmark import store_for
    from suite.experiment import load_experiment
    from suite.matrix import Settings, run_matrix
    from suite.packing import choose_packing
    from suite.roles import TAG, Role
    from suite.tracking import log_metrics, open_run

    if name not in REPRODUCTIONS:
        raise UserError(f"reproduce: unknown reproduction '{name}'; known: {', '.join(REPRODUCTIONS)}")
    if seeds < 1 or (epochs is not None and epochs < 1):
        raise UserError("--seeds and --epochs: need at least 1")
    entry = REPRODUCTIONS[name]
    if entry.reference is not None:
        import_keras()  # before anything is recorded
    exp = load_experiment(config=str(CONFIGS / entry.config), seeds=range(seeds), announce=None,
                          sets=[f"train.epochs={epochs}"] if epochs else [])
    pack = choose_packing(exp.cells, jobs)
    store = store_for(exp, tracking, experiment or "rnnbench-reproduce")
    tags = {TAG: Role.REPRODUCTION, "reproduction": name, "what": entry.what, "source": entry.source,
            "metric": entry.metric, "tolerance": str(entry.tolerance)}
    with open_run(store, f"reproduce-{name}", tags) as run:
        parent = run.id
        nested = {c.config_hash: {"mlflow.parentRunId": parent} for c in exp.cells}
        outcomes = run_matrix(store, exp.cells, Settings(exp.name, force=force, role=Role.REPRO_CELL, packing=pack,
                                                         tags=nested))
        done = [o for o in outcomes if o.status in ("FINISHED", "SKIPPED")]
        if entry.direction is not None:
            result, by_model = contrast(done, entry)
            log_metrics(store.client, parent, {k: v for k, v in result.items() if isinstance(v, float)})
            store.client.log_dict(parent, {"by_model": by_model, **result}, "reproduction.json")
            print(contrast_table(by_model, result, entry))
            return 0 if result["reproduced"] == 1.0 else 1
        ours = {o.cell.seed: o.metrics.get(entry.metric) for o in done}
        if entry.reference is None:
            reference = dict.fromkeys(ours, entry.published)
        else:
            reference = {c.seed: _reference_run(store, parent, entry, c) for c in exp.cells}
        result = compare(ours, reference, entry)
        log_metrics(store.client, parent, {k: v for k, v in result.items() if isinstance(v, float)})
        store.client.log_dict(parent, {"ours": ours, "reference": reference, **result}, "reproduction.json")
    print(table(ours, reference, result, entry))
    return 0 if result["reproduced"] == 1.0 else 1


def _reference_run(store, parent, entry, cell) -> float:
    from suite.roles import TAG, Role
    from suite.tracking import log_metrics, open_run

    tags = {TAG: Role.REFERENCE_RUN, "mlflow.parentRunId": parent, "seed": str(cell.seed), "source": entry.source,
            "keras_version": import_keras().__version__}
    with open_run(store, f"reference-s{cell.seed}", tags, heartbeat=False) as run:
        value = entry.reference(cell.seed, cell)
        log_metrics(store.client, run.id, {entry.metric: value})
    print(f"reference seed {cell.seed}: {entry.metric} {value:.4f}", flush=True)
    return value


def compare(ours: dict, reference: dict, entry: Reproduction) -> dict:
    """Means, sample standard deviations, the difference of the means and whether it is within the tolerance."""
    mine, theirs = [v for v in ours.values() if v is not None], [v for v in reference.values() if v is not None]
    if not mine or not theirs:
        raise UserError(f"reproduce: no {entry.metric} on one side (see the runs' errors)")
    spread = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0  # noqa: E731
    diff = statistics.mean(mine) - statistics.mean(theirs)
    return {"ours_mean": statistics.mean(mine), "ours_std": spread(mine), "reference_mean": statistics.mean(theirs),
            "reference_std": spread(theirs), "difference": diff, "tolerance": entry.tolerance,
            "reproduced": float(abs(diff) <= entry.tolerance)}


def table(ours: dict, reference: dict, result: dict, entry: Reproduction) -> str:
    from suite.console import aligned

    fmt = lambda v: "–" if v is None else f"{v:.4f}"  # noqa: E731
    rows = [[str(s), fmt(reference.get(s)), fmt(ours.get(s))] for s in sorted(set(ours) | set(reference))]
    rows.append(["mean ± std", f"{result['reference_mean']:.4f} ± {result['reference_std']:.4f}",
                 f"{result['ours_mean']:.4f} ± {result['ours_std']:.4f}"])
    verdict = "reproduced" if result["reproduced"] == 1.0 else "NOT reproduced"
    return (aligned(["seed", f"reference {entry.metric}", f"ours {entry.metric}"], rows, left={0})
            + f"\ndifference of the means {result['difference']:+.4f} (tolerance ±{entry.tolerance}): {verdict}")


def contrast(done: list, entry: Reproduction) -> tuple[dict, dict]:
    """A claim between two of our models: reproduced when the winner beats the loser beyond seed noise (the
    leaderboards' rule, compare.decide), with both means."""
    from suite.compare import decide

    by_model = {m: {o.cell.seed: o.metrics.get(entry.metric) for o in done if o.cell.model == m}
                for m in entry.direction}
    values = {m: [v for v in seeds.values() if v is not None] for m, seeds in by_model.items()}
    if not all(values.values()):
        raise UserError(f"reproduce: no {entry.metric} for {', '.join(m for m, v in values.items() if not v)} "
                        "(see the runs' errors)")
    winner, loser = entry.direction
    verdict = decide(values, higher_is_better=entry.metric != "test_mse")
    means = {m: statistics.mean(v) for m, v in values.items()}
    return {f"{winner}_mean": means[winner], f"{loser}_mean": means[loser], "difference": means[winner] - means[loser],
            "reproduced": float(verdict.winner == winner), "reason": verdict.reason}, by_model


def contrast_table(by_model: dict, result: dict, entry: Reproduction) -> str:
    from suite.console import aligned

    winner, loser = entry.direction
    fmt = lambda v: "–" if v is None else f"{v:.4f}"  # noqa: E731
    seeds = sorted(set(by_model[winner]) | set(by_model[loser]))
    rows = [[str(s), fmt(by_model[winner].get(s)), fmt(by_model[loser].get(s))] for s in seeds]
    rows.append(["mean", fmt(result[f"{winner}_mean"]), fmt(result[f"{loser}_mean"])])
    verdict = (f"reproduced: {winner} beats {loser} beyond seed noise" if result["reproduced"] == 1.0 else
               f"NOT reproduced: {result['reason'] or f'{loser} is not below {winner}'}")
    return (aligned(["seed", f"{winner} {entry.metric}", f"{loser} {entry.metric}"], rows, left={0})
            + f"\ndifference of the means {result['difference']:+.4f}: {verdict}\nclaim: {entry.source}")
