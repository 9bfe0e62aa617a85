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
    """Every model at every length of the task's ladder and every seed, under the sweep's budget."""
    import math

    from suite.config import plan

    entry = dict((raw.get("tasks") or {}).get(task) or {})
    entry["seq_len"] = getattr(cfg, task)
    train = dict(entry.get("train") or {})
    if cfg.budget_steps:  # the same optimizer steps for every model and length (rounded up to whole epochs)
        per_epoch = {**(raw.get("train") or {}), **train}.get("steps_per_epoch") or 100
        train["epochs"] = math.ceil(cfg.budget_steps / per_epoch)
    if cfg.budget_minutes:
        train["max_minutes"] = cfg.budget_minutes
    entry["train"] = train
    return plan({**raw, "tasks": {task: entry}, "seeds": list(range(cfg.seeds))}, source)


def summarise(outcomes, min_share: float) -> tuple[dict, dict, dict]:
    """(horizon by model, solved share by (model, T), test_vs_chance values by (model, T))."""
    from collections import defaultdict

    solved, ratio = defaultdict(list), defaultdict(list)
    for o in outcomes:
        if o.status in ("FINISHED", "SKIPPED") and "solved" in o.metrics:
            solved[(o.cell.model, o.cell.seq_len)].append(o.metrics["solved"] == 1)
            ratio[(o.cell.model, o.cell.seq_len)].append(o.metrics["test_vs_chance"])
        else:  # a failed run counts as unsolved: it did not solve the length
            solved[(o.cell.model, o.cell.seq_len)].append(False)
    models = dict.fromkeys(o.cell.model for o in outcomes)
    horizons = {m: horizon({T: v for (mm, T), v in solved.items() if mm == m}, min_share) for m in models}
    shares = {k: sum(v) / len(v) for k, v in solved.items()}
    return horizons, shares, dict(ratio)


def table(horizons: dict, shares: dict) -> str:
    lengths = sorted({T for _, T in shares})
    header = ["model", *(f"T={T}" for T in lengths), "horizon"]
    rows = [[m, *(f"{shares.get((m, T), 0):.2f}" for T in lengths), str(h) if h else "none"] for m, h in horizons.items()]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in (header, ["-" * w for w in widths], *rows))


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
