"""The index's first section, the answer: the overall verdict across settings (suite/overall.py) with its figures,
each model's cost against sequence length, and which model to choose by setting and by dependency length; and
results.json, the same numbers for other tools."""
from __future__ import annotations

import json
from pathlib import Path

from suite import overall as answer
from suite import robustness
from suite.overall import slope
from suite.recipe import WINDOW
from suite.report.overall_plots import plot_frontier, plot_lr, plot_profile, plot_scaling, plot_scores
from suite.report.plots import clean_svg
from suite.roles import Role
from suite.runs import Run
from suite.scoring import STATS, Board, unit_of

CAPTIONS = {  # plot -> (caption, alt text)
    "overall-scores": ("Each model's score over the settings: interquartile mean (thick bar: its 95% interval), mean "
                       "(hollow marker: its interval), every run (dots)",
                       "Interval plot of each model's interquartile mean and mean score, with a dot per run and a "
                       "dashed line at chance (0)."),
    "overall-profile": ("Performance profile: the share of each model's runs scoring above τ (band: 95% interval)",
                        "Line chart of the share of runs scoring above a threshold against it, a line per model."),
    "overall-frontier": ("Quality against cost: mean score against training seconds summed over the settings (faint: "
                         "another model is both better and cheaper)",
                         "Scatter of each model's mean score against its training seconds, log scale; dominated "
                         "models are faint."),
    "overall-cd": ("Critical-difference diagram: mean rank over the settings (Friedman, then Nemenyi); a bar joins "
                   "models it cannot tell apart", "Critical difference diagram of the models' mean ranks."),
    "cost-scaling": ("Cost against length: milliseconds per training step against T, log-log, with each model's "
                     "fitted slope (rnnbench speed --lengths)",
                     "Log-log line chart of training step time against sequence length, a line per model."),
}


def overall_section(boards: list[Board], by_role: dict, horizons: dict, out: Path, planned=None) -> dict:
    """Everything the overall section shows, its figures drawn into out/plots."""
    kinds = answer.recipes(boards)
    cells, o = by_role.get(Role.CELL, []), answer.overall(boards, recipe=next(iter(kinds), None))
    verdicts = robustness.budgets(cells, planned, next(iter(kinds), None), full=o)
    shared = answer.overall(boards, detail=False, recipe="pinned") if kinds[:2] == ["searched", "pinned"] else None
    shared = None if shared is None or shared.reason else robustness.Budget(1.0, shared, answer.leaders(shared))
    order = {b.setting: i for i, b in enumerate(boards)}
    found = sorted(robustness.found_in(by_role.get(Role.RECIPE, []), [r for b in boards for row in b.rows
                                                                     for r in row.runs.values()]),
                   key=lambda f: (order.get(f.setting, len(order)), f.model))
    section = {"o": o, "headline": answer.headline(o), "notes": answer.notes(o), "rows": answer.table_rows(o),
               "robustness": robustness.sentence(verdicts, next(iter(kinds), None), found, shared),
               "budgets": [{"share": b.share, "budget": robustness.SHARE_TEXT[b.share], "leads": b.text,
                            "iqm": b.overall.contenders[0].iqm if b.overall.contenders else None} for b in verdicts],
               "settled": robustness.settled(verdicts), "windows": robustness.windows(found),
               "robust": robustness.robust_share(found), "window": WINDOW, "edge": robustness.edge_note(found),
               "shared": None if shared is None else {"phrase": robustness.phrase(shared.overall, "pinned"),
                                                      "headline": answer.headline(shared.overall),
                                                      "rows": answer.table_rows(shared.overall)},
               "headers": answer.HEADERS, "figures": [], "improvement": _improvement(o),
               "by_setting": answer.choices(boards), "by_length": by_length(horizons, by_role.get(Role.SWEEP_CELL, [])),
               "scaling": scaling_rows(by_role.get(Role.SCALING, []))}
    points = {c.label: (c.mean, c.train_s, c.model) for c in o.contenders}
    front = answer.frontier({k: v[:2] for k, v in points.items()})
    draws = {"overall-scores": lambda p: plot_scores(o, p),
             "overall-profile": lambda p: plot_profile(o, answer.TAUS, p),
             "overall-frontier": lambda p: plot_frontier(points, front, f"score against training time, "
                                                                        f"{o.population}", p),
             "overall-cd": lambda p: _cd(o, p),
             "cost-scaling": lambda p: plot_scaling(section["scaling"], p)}
    for name, draw in draws.items():
        if draw(out / f"plots/{name}.svg"):
            section["figures"].append({"src": f"plots/{name}.svg", "caption": CAPTIONS[name][0],
                                       "alt": CAPTIONS[name][1]})
    section["lr_figures"] = []
    for setting in dict.fromkeys(w["setting"] for w in section["windows"]):
        name = f"lr-{setting.slug}"
        mine = [w for w in section["windows"] if w["setting"] == setting]
        if plot_lr(mine, f"{setting.label}: validation score against lr", out / f"plots/{name}.svg"):
            section["lr_figures"].append({"src": f"plots/{name}.svg", "caption": LR_CAPTION[0].format(
                setting=setting.label), "alt": LR_CAPTION[1].format(setting=setting.label)})
    return section


LR_CAPTION = ("{setting}: each model's validation score (search seed) against the learning rate, log scale: every "
              "point at the search's first rung (solid), the ones that went on at the next (dashed); ringed: the one "
              "its scored seeds trained at",
              "Line chart of validation score against learning rate on {setting}, a line per model, the chosen point "
              "ringed and a dashed line at chance (0).")


def _cd(o, path: Path) -> bool:
    if o.ranks is None or o.ranks.result is None or o.ranks.cd is None:
        return False
    from suite.uncertainty import cd_diagram

    cd_diagram(o.ranks.result, path)
    clean_svg(path)
    return True


def _improvement(o) -> list[dict]:
    """The probability of improvement as a matrix: a row per model x, a column per model y, P(x > y) [interval]."""
    labels = [c.label for c in o.contenders]

    def p_of(x, y):
        if x == y:
            return "–"
        found = o.improvement[(x, y)]
        return f"{found['p']:.2f}" if found["ci"] is None else f"{found['p']:.2f} [{found['ci'][0]:.2f}, " \
            f"{found['ci'][1]:.2f}]"

    return [{"model": x, "p": [p_of(x, y) for y in labels]} for x in labels] if o.improvement else []


def by_length(horizons: dict, sweep_cells: list[Run]) -> list[dict]:
    """From each task's newest sweep: for each length, the models that solve it in at least the sweep's share of
    seeds, cheapest first (mean training seconds of their runs there), each with its runs."""
    out = []
    for task, h in sorted(horizons.items()):
        parent, counted = h["run"].id, {i for ids in h.get("runs", {}).values() for i in ids}
        mine = [r for r in sweep_cells if r.status == "FINISHED" and (  # the runs the sweep counted (older: its own)
            r.id in counted if counted else r.tags.get("mlflow.parentRunId") == parent)]
        for T in h["lengths"]:
            picks = []
            for (model, length), share in h["shares"].items():
                if length != T or share < (h["min_share"] or 0.51):
                    continue
                runs = [r for r in mine if r.tags.get("model") == model and r.tags.get("seq_len") == str(T)]
                cost = [r.metrics["epoch_time_s"] * r.metrics["epochs_trained"] for r in runs
                        if "epoch_time_s" in r.metrics and "epochs_trained" in r.metrics]
                picks.append({"model": model, "share": share, "train_s": sum(cost) / len(cost) if cost else None,
                              "runs": runs})
            picks.sort(key=lambda p: (p["train_s"] is None, p["train_s"] or 0, p["model"]))
            out.append({"task": task, "seq_len": T, "picks": picks, "sweep": h["run"]})
    return out


def scaling_rows(runs: list[Run]) -> list[dict]:
    """The newest `speed --lengths` run of each model, task shape, device, batch and length, a row per model with its
    step times by T and the fitted slopes of time and memory."""
    newest = {}
    for r in runs:
        newest[(r.tags.get("model"), r.tags.get("task"), r.tags.get("device"), r.tags.get("batch_size"),
                int(r.tags.get("seq_len", 0)))] = r
    groups = {}
    for (model, task, device, batch, T), r in sorted(newest.items(), key=lambda kv: kv[0][4]):
        if "step_s" in r.metrics:
            groups.setdefault((model, task, device, batch), []).append((T, r))
    rows = []
    for (model, task, device, batch), found in groups.items():
        lengths = [T for T, _ in found]
        steps = [r.metrics["step_s"] for _, r in found]
        mbs = [r.metrics.get("activation_mb") for _, r in found]
        rows.append({"model": model, "task": task, "device": device, "batch": batch, "lengths": lengths,
                     "step_s": steps, "ms": [f"{v * 1000:.1f}" for v in steps], "slope": slope(lengths, steps),
                     "memory_slope": slope(lengths, mbs) if all(mbs) else None, "runs": [r for _, r in found]})
    return rows


def write_results(path: Path, boards: list[Board], section: dict, experiments: list):
    """results.json: the overall verdict per model and every board's numbers, as the pages show them."""
    o = section["o"]
    models = {c.label: {"model": c.model, "lr": c.lr, "score_mean": c.mean, "score_ci95": c.mean_ci, "iqm": c.iqm,
                        "iqm_ci95": c.iqm_ci, "mean_rank": c.rank, "cd_group": None if c.top is None else
                        ("top" if c.top else "below"), "train_s": c.train_s, "train_samples_per_s": c.samples_per_s,
                        "n_params": c.params, "peak_mem_mb": c.peak_mb, "solved": c.solved, "bimodal": c.bimodal,
                        "scores": c.seeds} for c in o.contenders}
    result = {"experiments": [e.name for e in experiments], "score": answer.SCORE,
              "robustness": section["robustness"], "headline": section["headline"],
              "budgets": [{k: b[k] for k in ("share", "leads", "iqm")} for b in section["budgets"]],
              "settled": section["settled"],
              "recipes": {"window": section["window"], "robust_share": section["robust"], "searches": [
                  {"model": w["model"], "setting": w["setting"].label, "chosen": w["chosen"], "edge": w["edge"],
                   "window": w["window"],
                   "width": w["width"], "scores": w["found"].scores, "val_losses": w["found"].losses}
                  for w in section["windows"]]},
              "shared_lr": section["shared"],
              "population": {"settings": [s.label for s in o.settings], "seeds": o.seeds, "left_out": o.left_out,
                             "incomplete": o.incomplete, "reason": o.reason},
              "models": models, "ranks": None if o.ranks is None else {
                  "mean": o.ranks.mean, "test": o.ranks.test, "pvalue": o.ranks.pvalue, "cd": o.ranks.cd,
                  "top": o.ranks.top, "reason": o.ranks.reason},
              "improvement": [{"x": x, "y": y, **v} for (x, y), v in o.improvement.items()],
              "boards": [_board(b) for b in boards],
              "choose_by_setting": [{"setting": c["setting"].label, "reason": c["reason"], "models": [
                  {"model": r.label, "train_s": r.stats["train_s"].mean} for r in c["rows"]]}
                  for c in section["by_setting"]],
              "choose_by_length": [{"task": c["task"], "seq_len": c["seq_len"], "models": [
                  {k: p[k] for k in ("model", "share", "train_s")} for p in c["picks"]]}
                  for c in section["by_length"]],
              "cost_scaling": [{k: r[k] for k in ("model", "task", "device", "batch", "lengths", "step_s", "slope",
                                                  "memory_slope")} for r in section["scaling"]]}
    path.write_text(json.dumps(result, indent=1, default=_plain) + "\n")


def _board(b: Board) -> dict:
    rows = []
    for r in b.rows:
        stats = {k: {"mean": s.mean, "std": s.std, "ci95": s.ci, "n": s.n, "mark": s.mark,
                     "text": s.text(unit_of(k, b.metric))} for k, s in r.stats.items() if k in STATS}
        rows.append({"model": r.model, "label": r.label, "tuned": r.tuned, "init": r.init, "recipe": r.recipe,
                     "lr": r.lr, "seeds": sorted(r.runs), "failed": sorted(r.failed),
                     "failed_after_finishing": sorted(r.later), "missing": r.missing, "solved": r.solved,
                     "bimodal": r.bimodal, "stats": stats})
    return {"setting": b.setting.label, "task": b.setting.task, "seq_len": b.setting.seq_len,
            "variant": b.setting.variant, "metric": b.metric, "verdict": b.verdict.reason or "winner",
            "rows": rows}


def _plain(value):
    if isinstance(value, tuple):
        return list(value)
    return float(value)

