"""The dependency horizon: the longest length a model solves, with every shorter one solved too."""
from __future__ import annotations

MAJORITY = 0.51


def horizon(solved: dict[int, list[bool]], min_share: float = MAJORITY) -> int | None:
    """Longest T of the ladder solved in at least `min_share` of its seeds, every shorter T too.

    `solved` maps each length to one flag a seed. None when even the shortest length is not solved.
    A length solved after an unsolved shorter one does not count: the horizon is where solving stops.
    """
    best = None
    for length in sorted(solved):
        runs = solved[length]
        if not runs or sum(runs) / len(runs) < min_share:
            break
        best = length
    return best


def sweep_cells(raw: dict, task: str, cfg, source: str):
    """Every model at every length of the task's ladder and every seed, under the sweep's budget.

    Each run is also tested at twice its length (length generalisation: train at T, test at 2T).
    """
    import math

    from suite.config import plan

    entry = dict((raw.get("tasks") or {}).get(task) or {})
    train = dict(entry.get("train") or {})
    if cfg.budget_steps:  # the same optimizer steps for every model and length (rounded up to whole epochs)
        per_epoch = {**(raw.get("train") or {}), **train}.get("steps_per_epoch") or 100
        train["epochs"] = math.ceil(cfg.budget_steps / per_epoch)
    if cfg.budget_minutes:
        train["max_minutes"] = cfg.budget_minutes
    cells = []
    for length in getattr(cfg, task):
        at = {**entry, "seq_len": length, "train": {**train, "eval_seq_lens": [2 * length]}}
        cells += plan({**raw, "tasks": {task: at}, "seeds": list(range(cfg.seeds))}, source)
    return cells


def summarise(outcomes, min_share: float) -> tuple[dict, dict, dict, dict]:
    """(horizon by model, solved share by (model, T), test_vs_chance values and those at 2T by (model, T))."""
    from collections import defaultdict

    solved, ratio, at_2t = defaultdict(list), defaultdict(list), defaultdict(list)
    for o in outcomes:
        if o.status in ("FINISHED", "SKIPPED") and "solved" in o.metrics:
            key = (o.cell.model, o.cell.seq_len)
            solved[key].append(o.metrics["solved"] == 1)
            ratio[key].append(o.metrics["test_vs_chance"])
            if f"test_vs_chance_at_{2 * o.cell.seq_len}" in o.metrics:
                at_2t[key].append(o.metrics[f"test_vs_chance_at_{2 * o.cell.seq_len}"])
        else:  # a failed run counts as unsolved: it did not solve the length
            solved[(o.cell.model, o.cell.seq_len)].append(False)
    models = dict.fromkeys(o.cell.model for o in outcomes)
    horizons = {m: horizon({T: v for (mm, T), v in solved.items() if mm == m}, min_share) for m in models}
    shares = {k: sum(v) / len(v) for k, v in solved.items()}
    return horizons, shares, dict(ratio), dict(at_2t)


def table(horizons: dict, shares: dict, ratio: dict, at_2t: dict) -> str:
    """Solved share per T, the horizon, then loss/chance trained at T and tested at T -> at 2T."""
    lengths = sorted({T for _, T in shares})
    mean = lambda v: f"{sum(v) / len(v):.2f}" if v else "-"  # noqa: E731
    header = ["model", *(f"T={T}" for T in lengths), "horizon", *(f"loss/chance {T}->{2 * T}" for T in lengths)]
    rows = [[m, *(f"{shares.get((m, T), 0):.2f}" for T in lengths), str(h) if h else "none",
             *(f"{mean(ratio.get((m, T), []))}->{mean(at_2t.get((m, T), []))}" for T in lengths)]
            for m, h in horizons.items()]
    from suite.summary import aligned

    return aligned(header, rows, left={0})


def plot(ratio: dict, task: str, path):
    """test_vs_chance against T, a line a model (mean over seeds) with a min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for model in dict.fromkeys(m for m, _ in ratio):
        lengths = sorted(T for m, T in ratio if m == model)
        values = [ratio[(model, T)] for T in lengths]
        ax.plot(lengths, [sum(v) / len(v) for v in values], marker="o", label=model)
        ax.fill_between(lengths, [min(v) for v in values], [max(v) for v in values], alpha=0.2)
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set(xscale="log", xlabel="sequence length T", ylabel="test loss / chance loss", title=f"{task}: loss against chance")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
