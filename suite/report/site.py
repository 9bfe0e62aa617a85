"""The report site, rebuilt from the MLflow store alone: runs -> tables -> Jinja2 templates -> static files.

index.html (the overall verdict and its cost first, then what was run, a leaderboard per task setting, failed and
missing cells, published figures),
task-<task>.html (learning curves, metric against size, horizon sweeps, gradient flow, attention maps,
tuning studies), speed.html, summary.md, leaderboard.csv and results.json. Nothing depends on when or where the site is
built, so the same store gives byte-identical files; the only http(s) URLs are links to the MLflow UI.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

from suite.errors import UserError
from suite.report.answer import overall_section, write_results
from suite.report.folder import claim, clear, seal
from suite.report.plots import FONT, plot_speed
from suite.report.references import attach_references, load_references, quoted
from suite.report.sections import horizon_section, reproduction_rows, speed_rows, task_section
from suite.report.tables import annotate, banners, facts, write_csv
from suite.roles import Role
from suite.runs import find_experiments, open_store, planned_cells, read_runs, registered
from suite.scoring import boards, unit_of
from suite.stores import redact, ui_url

HERE = Path(__file__).resolve().parent


def _environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.globals["unit_of"] = unit_of  # a statistic's number format
    env.globals["quoted"] = quoted  # published figures in a line
    return env


def write_site(uri: str, names: list[str] | None, profile: str | None, out: str | Path | None = None,
               ui: str | None = None, auto: bool = False) -> Path:
    """Read the experiments, write the site into `out` (default reports/<first experiment>/); returns index.html."""
    import os

    import matplotlib

    from tasks import TASKS

    if ui and (urlsplit(ui).scheme not in ("http", "https") or not urlsplit(ui).hostname):
        raise UserError(f"--mlflow-ui: {ui!r} is not an http(s) URL; give the MLflow UI's address, e.g. "
                        "http://127.0.0.1:5000, or '' for no run links")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    client = open_store(uri)
    experiments = find_experiments(client, uri, names, profile, auto)
    runs = [r for e in experiments for r in read_runs(client, uri, e.experiment_id)]
    if not any(r.role != "other" for r in runs):  # a report never writes to the store: nothing to show is an error
        raise UserError(f"no runs in experiment {', '.join(e.name for e in experiments)} of {redact(uri)}; "
                        "run `make benchmark` first")
    if ui is None:  # a tracking server serves its UI too; links never carry credentials
        ui = ui_url(uri)
    out = Path(out) if out else Path("reports") / re.sub(r"[^\w.-]+", "_", experiments[0].name)
    kept = clear(out, claim(out, experiments))  # only into a folder it owns, removing only what it wrote
    (out / "plots").mkdir(parents=True, exist_ok=True)
    (out / "img").mkdir(exist_ok=True)
    by_role = defaultdict(list)
    for r in runs:
        by_role[r.role].append(r)
    planned = planned_cells(experiments)
    all_boards, figures = boards(by_role[Role.CELL], planned), load_references()
    for board in all_boards:
        annotate(board)
        attach_references(board, figures)
    versions = registered(client)
    for row in (row for b in all_boards for row in b.rows):
        row.registered = [versions[r.id] for r in row.runs.values() if r.id in versions]
    env = _environment()
    common = {"experiments": experiments, "ui": ui.rstrip("/") if ui else "", "speed": bool(by_role[Role.SPEED]),
              "banners": banners(all_boards),
              "rebuild": "rnnbench report " + " ".join(f"--experiment {e.name}" for e in experiments)}
    tasks = defaultdict(list)
    with matplotlib.rc_context({"svg.hashsalt": "rnnbench-report", "svg.fonttype": "path", **FONT}), \
            tempfile.TemporaryDirectory() as tmp:
        for board in all_boards:
            tasks[board.setting.task].append(task_section(client, board, by_role, out, tmp))
        sweeps = {r.tags.get("task") for r in by_role[Role.SWEEP]} - {None}
        task_order = {t: i for i, t in enumerate(TASKS)}
        for task in sorted(sweeps - set(tasks), key=lambda t: (task_order.get(t, len(task_order)), t)):
            tasks[task] = []  # a sweep without a benchmark still gets its page
        horizons = {t: h for t in tasks if (h := horizon_section(client, by_role[Role.SWEEP], t, out, tmp))}
        verdict = overall_section(all_boards, by_role, horizons, out, planned)
        speed = speed_rows(by_role[Role.SPEED])
        reproductions = reproduction_rows(by_role[Role.REPRODUCTION])
        if speed:
            plot_speed(speed, out / "plots/speed.svg")
    common["tasks"] = list(tasks)
    pages = {"index.html": env.get_template("index.html").render(
        **common, page="index", boards=all_boards, facts=facts(all_boards, experiments, planned), horizons=horizons,
        reproductions=reproductions, overall=verdict, planned=planned is not None)}
    for task, sections in tasks.items():
        pages[f"task-{task}.html"] = env.get_template("task.html").render(
            **common, page=task, task=task, sections=sections, horizon=horizons.get(task))
    if speed:
        pages["speed.html"] = env.get_template("speed.html").render(**common, page="speed", rows=speed)
    for name, text in pages.items():
        (out / name).write_text(text)
    (out / "summary.md").write_text(env.get_template("summary.md").render(
        **common, boards=all_boards, facts=facts(all_boards, experiments, planned), overall=verdict))
    write_csv(out / "leaderboard.csv", all_boards)
    write_results(out / "results.json", all_boards, verdict, experiments)
    shutil.copyfile(HERE / "templates" / "style.css", out / "style.css")
    seal(out, kept)
    return out / "index.html"


def report(profile: str, names: list[str] | None, tracking: str | None, out: str | None, ui: str | None) -> int:
    """`rnnbench report`: the store from the flag, the environment or the profile's stores:, then the site."""
    from suite.config import StoresConfig
    from suite.experiment import load_raw, resolve_profile, validated_section
    from suite.stores import tracking_uri

    raw, _, source = load_raw(profile)
    uri = tracking_uri(tracking, validated_section(StoresConfig, raw, "stores", source).tracking_uri)
    index = write_site(uri, names, None if names else resolve_profile(profile), out=out, ui=ui,
                       auto=profile == "auto")
    print(f"Report: {index} (open {index.resolve().as_uri()})")
    return 0
