"""Report sections read from other commands' runs: learning curves, horizon sweeps, gradient flow, attention
maps, tuning studies and speed."""
from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

from suite.diagnostics import plot_gradflow
from suite.overall import frontier
from suite.report.overall_plots import plot_frontier
from suite.report.plots import clean_svg, colour, plot_curves, plot_losses, plot_size
from suite.roles import Role
from suite.runs import Run, Setting
from suite.scoring import Board


def _download(client, run: Run, name: str, tmp: str) -> Path | None:
    try:
        return Path(client.download_artifacts(run.id, name, tmp))
    except Exception:  # the artifact is not there (e.g. an older run)
        return None


def histories(client, board: Board) -> dict:
    """run id -> {"epoch", "value", "elapsed"} from the per-epoch metrics."""
    out = {}
    for row in board.rows:
        for run in row.runs.values():
            values = sorted((m.step, m.value) for m in client.get_metric_history(run.id, f"val_{board.metric}"))
            elapsed = dict(sorted((m.step, m.value) for m in client.get_metric_history(run.id, "elapsed_s")))
            losses = {k: [v for _, v in sorted((m.step, m.value) for m in client.get_metric_history(run.id, k))]
                      for k in ("train_loss", "val_loss")}
            out[run.id] = {"epoch": [s + 1 for s, _ in values], "value": [v for _, v in values],
                           "elapsed": [elapsed[s] for s, _ in values if s in elapsed], **losses}
    return out


def horizon_section(client, sweeps: list[Run], task: str, out: Path, tmp: str) -> dict | None:
    """The newest finished length sweep on the task: horizon per model, solved share by T, the plot."""
    from suite.studies import horizon

    mine = [r for r in sweeps if r.tags.get("task") == task and r.status == "FINISHED"]
    if not mine:
        return None
    run = mine[-1]
    path = _download(client, run, "horizon.json", tmp)
    if path is None:
        return None
    data = json.loads(path.read_text())
    lengths = sorted({r["seq_len"] for r in data["solved_share"]})
    models = list(data["horizon"])
    by = {(r["model"], r["seq_len"]): r for r in data["solved_share"]}
    mean = lambda v: f"{sum(v) / len(v):.2f}" if v else "–"  # noqa: E731
    rows = [{"model": m, "horizon": data["horizon"][m] or "none",
             "shares": [f"{by[(m, T)]['solved_share']:.2f}" if (m, T) in by else "–" for T in lengths],
             "ratios": [f"{mean(by.get((m, T), {}).get('test_vs_chance') or [])} → "
                        f"{mean(by.get((m, T), {}).get('test_vs_chance_at_2T') or [])}" for T in lengths]}
             for m in models]
    ratio = {(r["model"], r["seq_len"]): r["test_vs_chance"] for r in data["solved_share"] if r.get("test_vs_chance")}
    plot = None
    if ratio:
        import matplotlib
        from cycler import cycler

        plot = f"plots/{task}-horizon.svg"
        colours = [colour(m) for m in dict.fromkeys(m for m, _ in ratio)]
        with matplotlib.rc_context({"axes.prop_cycle": cycler(color=colours)}):
            horizon.plot(ratio, task, out / plot)  # a model keeps its colour from the other plots
        clean_svg(out / plot)
    return {"run": run, "lengths": lengths, "rows": rows, "plot": plot, "min_share": data.get("min_share"),
            "budget": run.tags.get("budget", ""), "seeds": run.tags.get("seeds", ""), "task": task,
            "shares": {(r["model"], r["seq_len"]): r["solved_share"] for r in data["solved_share"]},
            "runs": {(r["model"], r["seq_len"]): r["runs"] for r in data["solved_share"] if "runs" in r}}


def _read_gradflow(path: Path) -> dict[str, list[float]]:
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    names = [k.removeprefix("grad_norm_") for k in rows[0] if k.startswith("grad_norm_")] if rows else []
    return {n: [float(r[f"grad_norm_{n}"]) for r in rows] for n in names}


def gradflow_section(client, board: Board, standalone: list[Run], out: Path, tmp: str) -> list[dict]:
    """‖∂L/∂h_t‖ plots: the benchmark runs that recorded it (first seed of each model) and gradflow runs."""
    found, curves, decay = [], {}, []
    for row in board.rows:
        run = next((r for _, r in sorted(row.runs.items()) if r.params.get("train.gradflow") == "True"), None)
        path = run and _download(client, run, "gradflow.csv", tmp)
        if path:
            for name, norms in _read_gradflow(path).items():
                curves[f"{row.label} {name}"] = norms
            decay.append({"model": row.label, "init": run.metrics.get("grad_decay_per_step_init"),
                          "trained": run.metrics.get("grad_decay_per_step"), "run": run})
    s = board.setting
    if curves:
        plot = f"plots/{s.slug}-gradflow.svg"
        plot_gradflow(curves, f"gradient flow: {s.label} (benchmark runs)", out / plot)
        clean_svg(out / plot)
        found.append({"plot": plot, "runs": [d["run"] for d in decay], "decay": decay,
                      "alt": f"Gradient norm against steps from the loss on {s.label}, log scale, at initialisation "
                             f"and trained, for {', '.join(d['model'] for d in decay)}."})
    mine = [r for r in standalone if r.tags.get("task") == s.task and r.tags.get("seq_len") == str(s.seq_len)
            and r.status == "FINISHED" and not s.variant]
    if mine:
        run = mine[-1]
        path = _download(client, run, "gradflow.csv", tmp)
        if path:
            plot = f"plots/{s.slug}-gradflow-run.svg"
            plot_gradflow(_read_gradflow(path), f"gradient flow: {s.label} (rnnbench gradflow)", out / plot)
            clean_svg(out / plot)
            found.append({"plot": plot, "runs": [run], "decay": [],
                          "alt": f"Gradient norm against steps from the loss on {s.label}, log scale, at "
                                 f"initialisation and trained, for {run.tags.get('models', '')}."})
    return found


def attention_section(client, board: Board, out: Path, tmp: str) -> list[dict]:
    """attention.png of each row's first seed, where its run logged one (backbones with attention), copied in."""
    found = []
    for row in board.rows:
        if not row.runs:
            continue
        seed, run = sorted(row.runs.items())[0]
        path = _download(client, run, "attention.png", tmp)
        if path:
            name = f"img/{board.setting.slug}-{re.sub(r'[^a-z0-9_]+', '-', row.label.lower()).strip('-')}-attention.png"
            shutil.copyfile(path, out / name)
            found.append({"img": name, "run": run, "label": row.label, "seed": seed})
    return found


def study_rows(client, studies: list[Run], setting: Setting, out: Path, tmp: str) -> list[dict]:
    """Each study on the setting: trials by outcome, the best value and parameters (rounded to what matters), and
    Optuna's optimisation-history and importance plots when the study's run has them."""
    mine = [r for r in studies if r.tags.get("task") == setting.task and r.tags.get("seq_len") == str(setting.seq_len)]
    rows = []
    for r in mine:
        plots = []
        for name, what in (("optimization_history", "optimisation history"), ("param_importances", "importances")):
            path = _download(client, r, f"{name}.png", tmp)
            if path:
                plots.append({"img": f"img/{r.tags.get('study', r.id)}-{name}.png", "what": what})
                shutil.copyfile(path, out / plots[-1]["img"])
        rows.append({"run": r, "study": r.tags.get("study", r.name), "model": r.tags.get("model", ""),
                     "status": r.status, "complete": r.metrics.get("n_complete"), "pruned": r.metrics.get("n_pruned"),
                     "failed": r.metrics.get("n_failed"), "best": r.metrics.get("best_val_loss"), "plots": plots,
                     "params": ", ".join(f"{k.removeprefix('best.')}={_round(v)}" for k, v in sorted(r.tags.items())
                                         if k.startswith("best.") and k != "best.trial")})
    return rows


def _round(value: str) -> str:
    """A tuned value to 3 significant digits (0.04300598622271392 -> 0.043)."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() and "." not in value else f"{number:.3g}"


def speed_rows(runs: list[Run]) -> list[dict]:
    """The newest speed run of each model x task shape x device, in registry order."""
    from suite.models import MODELS
    from tasks import TASKS

    newest = {}
    for r in runs:
        newest[(r.tags.get("task"), int(r.tags.get("seq_len", 0)), r.tags.get("model"), r.tags.get("device"),
                r.tags.get("batch_size"))] = r
    key = lambda k: (list(TASKS).index(k[0]) if k[0] in TASKS else 99, k[0], k[1],  # noqa: E731
                     list(MODELS).index(k[2]) if k[2] in MODELS else 99, k[2], k[3] or "", k[4] or "")
    rows = []
    for k in sorted(newest, key=key):
        r, m = newest[k], newest[k].metrics

        def x(name, spec, m=m):
            return format(m[name], spec) if name in m else "–"

        rows.append({"run": r, "model": k[2], "task": k[0], "seq_len": k[1], "device": k[3], "batch": k[4],
                     "shape": f"{k[0]} T={k[1]}", "suite": m["suite_samples_per_s"],
                     "suite_text": x("suite_samples_per_s", ",.0f"), "raw": x("raw_samples_per_s", ",.0f"),
                     "ratio": x("suite_vs_raw", ".3f"),
                     "fused": x("fused_vs_stepped" if "fused_vs_stepped" in m else "fused_vs_cell", ".2f"),
                     "attn": x("attn_vs_base_step_time", ".2f"), "compile": x("compile_vs_eager", ".2f"),
                     "data": format(100 * m["data_share"], ".1f") if "data_share" in m else "–",
                     "act": x("activation_mb", ".1f"), "hw": r.tags.get("gpu") or r.tags.get("cpu", "")})
    return rows


def task_section(client, board: Board, by_role: dict, out: Path, tmp: str) -> dict:
    """Everything a task page shows for one setting: leaderboard, plots, tuning, gradient flow, attention."""
    s = board.setting
    section = {"board": board, "figures": [], "studies": study_rows(client, by_role[Role.STUDY], s, out, tmp),
               "gradflow": gradflow_section(client, board, by_role[Role.GRADFLOW], out, tmp),
               "attention": attention_section(client, board, out, tmp)}
    if not any(r.runs for r in board.rows):
        return section
    h = histories(client, board)
    name = "accuracy" if board.metric == "acc" else "MSE"
    models = ", ".join(r.label for r in board.rows if r.runs)
    task = chance_task(s)
    metric_chance, loss_chance = (task.chance_metric(), task.chance_loss()) if task else (None, None)
    for x_key, what in (("epoch", "epoch"), ("elapsed", "wall-clock seconds")):
        plot = f"plots/{s.slug}-val-{x_key}.svg"
        if plot_curves(board, h, x_key, out / plot, metric_chance):
            section["figures"].append({"src": plot, "caption": f"Validation {name} against {what} (dashed: chance)",
                                       "alt": f"Line chart of validation {name} against {what} on {s.label}, a thin "
                                              f"line a seed and a thick line the mean over seeds (band from min to "
                                              f"max), a dashed line at chance: {models}."})
    plot = f"plots/{s.slug}-loss.svg"
    if plot_losses(board, h, out / plot, loss_chance):
        section["figures"].append({"src": plot, "caption": "Train (dashed) and validation (solid) loss against epoch",
                                   "alt": f"Line chart of train and validation loss against epoch on {s.label}, log "
                                          f"scale, mean over seeds, with the chance loss: {models}."})
    plot = f"plots/{s.slug}-frontier.svg"
    points = {r.label: (r.stats["score"].mean, r.stats["train_s"].mean, r.model) for r in board.rows if r.runs}
    if plot_frontier(points, frontier({k: v[:2] for k, v in points.items()}), f"{s.label}: score against cost",
                     out / plot):
        section["figures"].append({"src": plot, "caption": "Quality against cost: mean score against training "
                                   "seconds (faint: another model is both better and cheaper)",
                                   "alt": f"Scatter of mean score against training seconds on {s.label}, log scale, a "
                                          f"point per model, dominated models faint: {models}."})
    plot = f"plots/{s.slug}-size.svg"
    if plot_size(board, out / plot, metric_chance):
        section["figures"].append({"src": plot, "caption": f"Test {name} against parameter count (dashed: chance)",
                                   "alt": f"Scatter of test {name} against parameters on {s.label}, a point a model "
                                          f"(error bar: std over seeds), a dashed line at chance: {models}."})
    return section


def chance_task(setting: Setting):
    """A task of the setting, to ask its chance values; None for a task this checkout does not have."""
    from tasks import TASKS

    cls = TASKS.get(setting.task)
    if cls is None:
        return None
    try:
        return cls(cls.Config(**({"seq_len": setting.seq_len} if cls.has_length() else {})))
    except Exception:  # settings this checkout no longer accepts: no chance line rather than no page
        return None


def reproduction_rows(runs: list[Run]) -> list[dict]:
    """The newest finished run of each reproduction: both sides' means, the difference and the verdict."""
    newest = {r.tags.get("reproduction"): r for r in runs if r.status == "FINISHED"}
    rows = []
    for name, r in sorted(newest.items()):
        m = r.metrics
        if "difference" not in m:
            continue
        rows.append({"run": r, "name": name, "what": r.tags.get("what", ""), "source": r.tags.get("source", ""),
                     "metric": r.tags.get("metric", ""), "ours": f"{m['ours_mean']:.3f} ± {m['ours_std']:.3f}",
                     "reference": f"{m['reference_mean']:.3f} ± {m['reference_std']:.3f}",
                     "difference": f"{m['difference']:+.3f}", "tolerance": f"±{m['tolerance']:g}",
                     "verdict": "reproduced" if m.get("reproduced") == 1 else "not reproduced"})
    return rows
