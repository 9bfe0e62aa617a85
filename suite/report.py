"""The report site, rebuilt from the MLflow store alone: runs -> tables -> Jinja2 templates -> static files.

index.html (what was run, a leaderboard per task setting, failed and missing cells, published figures),
task-<task>.html (learning curves, metric against size, horizon sweeps, gradient flow, attention maps,
tuning studies), speed.html, summary.md and leaderboard.csv. Nothing depends on when or where the site is
built, so the same store gives byte-identical files; the only http(s) URLs are links to the MLflow UI.
"""
from __future__ import annotations

import csv
import io
import json
import re
import shutil
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from suite.errors import UserError
from suite.summary import Group, mean_std
from suite.tracking import redact

DEFAULT_UI = "http://127.0.0.1:5000"
HERE = Path(__file__).resolve().parent
OWNED = ("index.html", "speed.html", "style.css", "summary.md", "leaderboard.csv", "plots", "img")  # and task-*.html
COMPANIONS = ("horizon", "tune", "gradflow")  # rnnbench-<kind>-<profile>, reported with rnnbench-<profile>


@dataclass
class Run:
    """One MLflow run, as the report reads it."""

    id: str
    experiment_id: str
    status: str
    start: int
    name: str
    tags: dict
    params: dict
    metrics: dict

    @property
    def role(self) -> str:
        t = self.tags
        if t.get("rnnbench_role") in ("sweep", "study"):
            return t["rnnbench_role"]
        if "suite_vs_raw" in self.metrics:
            return "speed"
        if "trained_runs" in t:
            return "gradflow"
        if "mlflow.parentRunId" in t:  # a sweep's or a study's own runs
            return "child"
        return "cell" if {"model", "task", "seq_len", "seed"} <= t.keys() else "other"


@dataclass(frozen=True)
class Setting:
    """A task at one length and variant: one leaderboard."""

    task: str
    seq_len: int
    variant: str = ""  # "permuted": pixel MNIST with permute: true

    @property
    def label(self) -> str:
        return f"{self.task}{f' ({self.variant})' if self.variant else ''} T={self.seq_len}"

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.label.lower()).strip("-")


def setting_of(run: Run) -> Setting:
    return Setting(run.tags["task"], int(run.tags["seq_len"]), "permuted" if run.params.get("task.permute") == "True" else "")


# -- the store ---------------------------------------------------------------------------------------------

def open_store(uri: str):
    """An MlflowClient on the store, after checking it is there (never creating an empty one)."""
    from mlflow import MlflowClient

    scheme = urlsplit(uri).scheme
    if scheme == "sqlite":
        db = Path(uri.removeprefix("sqlite:///"))
        if not db.is_file():
            raise UserError(f"no MLflow store at {uri} ({db} not found); run `make benchmark` first")
    elif scheme in ("http", "https"):
        import requests

        try:
            requests.get(uri.rstrip("/") + "/health", timeout=5).raise_for_status()
        except requests.RequestException as e:
            raise UserError(f"--tracking-uri: tracking server {redact(uri)} unreachable ({type(e).__name__})") from None
    return MlflowClient(uri)


def find_experiments(client, uri: str, names: list[str] | None, profile: str | None) -> list:
    """The named experiments; by default rnnbench-<profile> and those of its horizon, tune, gradflow and
    speed commands that exist."""
    wanted = names or [f"rnnbench-{profile}"]
    optional = [] if names else [*(f"rnnbench-{k}-{profile}" for k in COMPANIONS), "rnnbench-speed"]
    found = []
    for name in wanted:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            known = sorted(e.name for e in client.search_experiments(max_results=1000) if e.name != "Default")
            raise UserError(f"unknown experiment '{name}' in {redact(uri)}; "
                            + (f"experiments there: {', '.join(known)}" if known else "it has none; run `make benchmark` first"))
        found.append(experiment)
    return found + [e for e in map(client.get_experiment_by_name, optional) if e is not None]


def read_runs(client, experiment_id: str) -> list[Run]:
    """Every active run of the experiment, oldest first."""
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        runs += [Run(r.info.run_id, r.info.experiment_id, r.info.status, r.info.start_time or 0, r.info.run_name or "",
                     dict(r.data.tags), dict(r.data.params), dict(r.data.metrics)) for r in page]
        token = page.token
        if not token:
            return sorted(runs, key=lambda r: (r.start, r.id))


# -- tables ------------------------------------------------------------------------------------------------

@dataclass
class Row:
    """A model (tuned or not) on one setting: the finished run of each seed, and the seeds that are not."""

    model: str
    tuned: bool
    runs: dict = field(default_factory=dict)  # seed -> the newest FINISHED run
    failed: dict = field(default_factory=dict)  # seed -> the newest run, none of the seed's having finished
    missing: list = field(default_factory=list)  # seeds the profile planned that have no run at all
    cells: dict = field(default_factory=dict)  # column -> {"text", "mean", "best"}
    reference: dict | None = None

    @property
    def label(self) -> str:
        return f"{self.model} (tuned)" if self.tuned else self.model

    @property
    def group(self) -> Group:
        return Group([("FINISHED", r.metrics) for r in self.runs.values()] + [("FAILED", {})] * len(self.failed))

    @property
    def studies(self) -> list[str]:
        return sorted({r.tags["study"] for r in self.runs.values() if "study" in r.tags})


@dataclass
class Board:
    setting: Setting
    rows: list[Row]
    metric: str  # acc or mse
    columns: list[tuple[str, str]]  # (key, header)
    references: list[dict]

    @property
    def problems(self) -> list[dict]:
        """Failed and missing cells, one entry a seed."""
        out = []
        for row in self.rows:
            out += [{"row": row, "seed": s, "run": r, "status": r.status, "error": r.tags.get("error", "")}
                    for s, r in sorted(row.failed.items())]
            out += [{"row": row, "seed": s, "run": None, "status": "MISSING", "error": "planned, never run"}
                    for s in row.missing]
        return out


FORMATS = {"acc": ".3f", "mse": ".3g", "ratio": ".3f", "count": ",.0f", "rate": ",.0f"}


def fmt(value: float, kind: str) -> str:
    return format(value, FORMATS[kind])


def _cell(values: list[float], kind: str, spread: bool = True) -> dict:
    found = mean_std(values)
    if found is None:
        return {"text": "–", "mean": None, "std": None, "best": False}
    mean, std, _ = found
    text = fmt(mean, kind) if std is None or not spread else f"{fmt(mean, kind)} ± {fmt(std, kind)}"
    return {"text": text, "mean": mean, "std": std, "best": False}


def boards(cells: list[Run], planned: set | None, references: list[dict]) -> list[Board]:
    """One leaderboard a setting, a row a model (and its tuned variant), best value per column marked."""
    from suite.models import MODELS
    from tasks import TASKS

    latest, rows = {}, {}
    for run in cells:  # oldest first: the newest finished run of a cell wins, else its newest run
        key = (setting_of(run), run.tags["model"], run.tags.get("tuned") == "true", int(run.tags["seed"]))
        if run.status == "FINISHED" or latest.get(key, run).status != "FINISHED":
            latest[key] = run
    for (setting, model, tuned, seed), run in latest.items():
        row = rows.setdefault((setting, model, tuned), Row(model, tuned))
        (row.runs if run.status == "FINISHED" else row.failed)[seed] = run
    have = {(m, s, seed) for (s, m, _, seed) in latest}
    for model, setting, seed in sorted(planned or (), key=lambda c: (c[1].task, c[1].seq_len, c[1].variant, c[0], c[2])):
        if (model, setting, seed) not in have:
            rows.setdefault((setting, model, False), Row(model, False)).missing.append(seed)
    task_order, model_order = list(TASKS), list(MODELS)
    order = lambda s: (task_order.index(s.task) if s.task in task_order else len(task_order), s.task, s.seq_len, s.variant)  # noqa: E731
    out = []
    for setting in sorted({s for s, _, _ in rows}, key=order):
        mine = sorted((r for (s, _, _), r in rows.items() if s == setting),
                      key=lambda r: (model_order.index(r.model) if r.model in model_order else len(model_order), r.model, r.tuned))
        metric = ("mse" if TASKS[setting.task].output_kind == "regress_last" else "acc") if setting.task in TASKS \
            else next((r.group.metric for r in mine if r.group.metric), "acc")
        board = Board(setting, mine, metric, [], [])
        _score(board)
        _attach_references(board, references)
        out.append(board)
    return out


def _score(board: Board):
    metric = board.metric
    columns = [("test_metric", "test accuracy" if metric == "acc" else "test MSE", metric, "max" if metric == "acc" else "min"),
               ("test_vs_chance", "test loss / chance", "ratio", "min"),
               ("n_params", "params", "count", None),
               ("train_samples_per_s", "train samples/s", "rate", "max")]
    for row in board.rows:
        g = row.group
        for key, _, kind, _ in columns:
            row.cells[key] = _cell(g.values(key) if g.ok else [], kind, spread=kind != "count")
        solved = g.solved
        row.cells["solved"] = {"text": f"{solved[0]}/{solved[1]}" if solved else "–", "mean": None, "best": False}
    for key, _, kind, better in columns:  # best as shown: rows equal at the shown precision tie
        shown = {fmt(r.cells[key]["mean"], kind): r.cells[key]["mean"] for r in board.rows if r.cells[key]["mean"] is not None}
        if better and len(shown) > 1:  # a tie across every row marks nothing
            best = fmt((max if better == "max" else min)(shown.values()), kind)
            for r in board.rows:
                r.cells[key]["best"] = r.cells[key]["mean"] is not None and fmt(r.cells[key]["mean"], kind) == best
    board.columns = [(k, h) for k, h, _, _ in columns[:2]]
    if any(r.group.solved for r in board.rows):
        board.columns.append(("solved", "solved"))
    board.columns += [(k, h) for k, h, _, _ in columns[2:]]


def load_references() -> list[dict]:
    return yaml.safe_load((HERE / "references.yaml").read_text())["figures"]


def _attach_references(board: Board, references: list[dict]):
    """Published figures for this task variant, each with its source, beside our row of the same model."""
    s = board.setting
    found = [f for f in references if f["task"] == s.task and f.get("permute", False) == (s.variant == "permuted")
             and f["metric"] == f"test_{board.metric}" and f.get("seq_len", s.seq_len) == s.seq_len]
    sources = list(dict.fromkeys(f["source"] for f in found))
    board.references = [{**f, "n": sources.index(f["source"]) + 1, "text": fmt(f["value"], board.metric)} for f in found]
    for row in board.rows:
        row.reference = next((f for f in board.references if f["model"] == row.model and not row.tuned), None)


def planned_cells(profiles: set[str]) -> set | None:
    """(model, setting, seed) of every cell the runs' profiles plan; None when a profile is not found here."""
    from suite.config import CONFIGS, PROFILES, load_raw, plan

    cells = set()
    for name in sorted(profiles):
        path = CONFIGS / "profiles" / f"{name}.yaml" if name in PROFILES else CONFIGS / "experiments" / f"{name}.yaml"
        if not path.is_file():
            return None
        raw, _, source = load_raw(config=str(path))
        cells |= {(c.model, Setting(c.task, c.seq_len, "permuted" if getattr(c.task_cfg, "permute", False) else ""), c.seed)
                  for c in plan(raw, source)}
    return cells


def facts(all_boards: list[Board], experiments: list, planned: set | None) -> list[tuple[str, str]]:
    """What was run, from the runs the leaderboards show: profile, tasks, models, seeds, device, versions, git sha."""
    rows = [row for b in all_boards for row in b.rows]
    shown = [r for row in rows for r in (*row.runs.values(), *row.failed.values())]

    def values(key, runs=shown):
        count = Counter(r.tags[key] for r in runs if r.tags.get(key))
        if len(count) <= 1:
            return next(iter(count), "–")
        return ", ".join(f"{v} ({n} runs)" for v, n in sorted(count.items()))

    finished, failed, missing = (sum(len(getattr(row, k)) for row in rows) for k in ("runs", "failed", "missing"))
    starts = sorted(r.start for r in shown if r.start)
    day = lambda ms: datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")  # noqa: E731
    data = lambda b: values("data_source", [r for row in b.rows for r in (*row.runs.values(), *row.failed.values())])  # noqa: E731
    out = [("experiments", ", ".join(f"{e.name} (id {e.experiment_id})" for e in experiments)),
           ("profile", values("profile")),
           ("tasks", ", ".join(f"{b.setting.label} ({data(b)})" for b in all_boards) or "–"),
           ("models", ", ".join(dict.fromkeys(row.model for row in rows)) or "–"),
           ("seeds", ", ".join(map(str, sorted({s for row in rows for s in (*row.runs, *row.failed, *row.missing)}))) or "–"),
           ("cells", f"{finished} finished, {failed} failed or stopped, {missing} missing"
                     + ("" if planned is not None or not rows else " (the profile's plan is not known here)")),
           ("device", values("device")), ("CPU", values("cpu")), ("GPU", values("gpu")), ("precision", values("precision")),
           ("torch", values("torch_version")), ("Python", values("python_version")), ("CUDA", values("cuda_version")),
           ("git sha", values("git_sha"))]
    if starts:
        out.append(("runs started", f"{day(starts[0])} to {day(starts[-1])}"))
    return [(k, v) for k, v in out if v != "–" or k in ("experiments", "profile")]


# -- plots -------------------------------------------------------------------------------------------------

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colour(model: str) -> str:
    """The same colour for a model in every plot (tab10, registry order)."""
    import matplotlib
    from matplotlib.colors import to_hex

    from suite.models import MODELS

    names = list(MODELS)
    i = names.index(model) if model in names else len(names) + sum(map(ord, model)) % 6
    return to_hex(matplotlib.colormaps["tab10"].colors[i])


def save_svg(fig, path: Path):
    """SVG with fixed ids (svg.hashsalt is set by build) and no date, DOCTYPE or metadata: byte-stable."""
    fig.savefig(path, format="svg", metadata={"Date": None})
    _plt().close(fig)
    clean_svg(path)


def clean_svg(path: Path):
    text = Path(path).read_text()
    text = re.sub(r"<!DOCTYPE[^>]*>\s*", "", text)
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)
    Path(path).write_text(text)


def plot_curves(board: Board, histories: dict, x_key: str, path: Path) -> bool:
    """Validation metric against epoch or elapsed seconds: a line a row (mean over seeds), band min-max."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4))
    drawn = False
    for row in board.rows:
        series = [histories[r.id] for r in row.runs.values() if histories.get(r.id, {}).get("value")]
        if not series:
            continue
        n = max(len(s["value"]) for s in series)
        xs, mean, lo, hi = [], [], [], []
        for i in range(n):
            at = [s for s in series if i < len(s["value"])]
            ys = [s["value"][i] for s in at]
            x = [s["epoch"][i] for s in at] if x_key == "epoch" else [s["elapsed"][i] for s in at if i < len(s["elapsed"])]
            if not x:
                continue
            xs.append(sum(x) / len(x))
            mean.append(sum(ys) / len(ys))
            lo.append(min(ys))
            hi.append(max(ys))
        style = "--" if row.tuned else "-"
        ax.plot(xs, mean, style, marker="o", markersize=3, color=_colour(row.model), label=row.label)
        if len(series) > 1:
            ax.fill_between(xs, lo, hi, color=_colour(row.model), alpha=0.2)
        drawn = True
    if not drawn:
        plt.close(fig)
        return False
    name = "accuracy" if board.metric == "acc" else "MSE"
    ax.set(xlabel="epoch" if x_key == "epoch" else "wall-clock seconds since the start of training",
           ylabel=f"validation {name}", title=f"{board.setting.label}: validation {name}")
    if board.metric == "mse":
        ax.set_yscale("log")
    if x_key == "epoch":
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_svg(fig, path)
    return True


def plot_size(board: Board, path: Path) -> bool:
    """Test metric against parameter count, a point a row (mean, bars: std over seeds)."""
    plt = _plt()
    points = [(r, r.cells["n_params"], r.cells["test_metric"]) for r in board.rows]
    points = [(r, x, y) for r, x, y in points if x["mean"] is not None and y["mean"] is not None]
    if not points:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for row, x, y in points:
        ax.errorbar([x["mean"]], [y["mean"]], yerr=[y["std"] or 0], fmt="s" if row.tuned else "o", capsize=3,
                    color=_colour(row.model), label=row.label)
    name = "accuracy" if board.metric == "acc" else "MSE"
    ax.set(xlabel="parameters", ylabel=f"test {name}", title=f"{board.setting.label}: test {name} against size")
    if board.metric == "mse":
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_svg(fig, path)
    return True


def plot_speed(rows: list[dict], path: Path):
    """Suite training samples/s, bars by model within each task shape (log scale)."""
    plt = _plt()
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(6.4, 1.6 * len(shapes)), 4))
    width = 0.8 / max(len(models), 1)
    for i, model in enumerate(models):
        xs = [j + i * width for j, s in enumerate(shapes) for r in rows if r["shape"] == s and r["model"] == model]
        ys = [r["suite"] for s in shapes for r in rows if r["shape"] == s and r["model"] == model]
        ax.bar(xs, ys, width, color=_colour(model), label=model)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(shapes))], shapes)
    ax.set(yscale="log", ylabel="training samples/s (suite)", title="training speed by model and task")
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    fig.tight_layout()
    save_svg(fig, path)


# -- sections that come from other commands ------------------------------------------------------------------

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
            out[run.id] = {"epoch": [s + 1 for s, _ in values], "value": [v for _, v in values],
                           "elapsed": [elapsed[s] for s, _ in values if s in elapsed]}
    return out


def horizon_section(client, sweeps: list[Run], task: str, out: Path, tmp: str) -> dict | None:
    """The newest finished length sweep on the task: horizon per model, solved share by T, the plot."""
    from suite import horizon

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
        with matplotlib.rc_context({"axes.prop_cycle": cycler(color=[_colour(m) for m in dict.fromkeys(m for m, _ in ratio)])}):
            horizon.plot(ratio, task, out / plot)  # a model keeps its colour from the other plots
        clean_svg(out / plot)
    return {"run": run, "lengths": lengths, "rows": rows, "plot": plot, "min_share": data.get("min_share"),
            "budget": run.tags.get("budget", ""), "seeds": run.tags.get("seeds", "")}


def _read_gradflow(path: Path) -> dict[str, list[float]]:
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    names = [k.removeprefix("grad_norm_") for k in rows[0] if k.startswith("grad_norm_")] if rows else []
    return {n: [float(r[f"grad_norm_{n}"]) for r in rows] for n in names}


def gradflow_section(client, board: Board, standalone: list[Run], out: Path, tmp: str) -> list[dict]:
    """‖∂L/∂h_t‖ plots: the benchmark runs that recorded it (first seed of each model) and gradflow runs."""
    from suite import gradflow

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
        gradflow.plot(curves, f"gradient flow: {s.label} (benchmark runs)", out / plot)
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
            gradflow.plot(_read_gradflow(path), f"gradient flow: {s.label} (rnnbench gradflow)", out / plot)
            clean_svg(out / plot)
            found.append({"plot": plot, "runs": [run], "decay": [],
                          "alt": f"Gradient norm against steps from the loss on {s.label}, log scale, at initialisation "
                                 f"and trained, for {run.tags.get('models', '')}."})
    return found


def attention_section(client, board: Board, out: Path, tmp: str) -> list[dict]:
    """attention.png of each attn_rnn row's first seed, copied into the site."""
    found = []
    for row in board.rows:
        if row.model != "attn_rnn" or not row.runs:
            continue
        seed, run = sorted(row.runs.items())[0]
        path = _download(client, run, "attention.png", tmp)
        if path:
            name = f"img/{board.setting.slug}-{row.label.replace(' ', '-').strip('()')}-attention.png"
            shutil.copyfile(path, out / name)
            found.append({"img": name, "run": run, "label": row.label, "seed": seed})
    return found


def study_rows(studies: list[Run], setting: Setting) -> list[dict]:
    mine = [r for r in studies if r.tags.get("task") == setting.task and r.tags.get("seq_len") == str(setting.seq_len)]
    return [{"run": r, "study": r.tags.get("study", r.name), "model": r.tags.get("model", ""), "status": r.status,
             "complete": r.metrics.get("n_complete"), "pruned": r.metrics.get("n_pruned"), "failed": r.metrics.get("n_failed"),
             "best": r.metrics.get("best_val_loss"),
             "params": ", ".join(f"{k.removeprefix('best.')}={v}" for k, v in sorted(r.tags.items())
                                 if k.startswith("best.") and k != "best.trial")} for r in mine]


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
        x = lambda name, spec: format(m[name], spec) if name in m else "–"  # noqa: E731
        rows.append({"run": r, "model": k[2], "task": k[0], "seq_len": k[1], "device": k[3], "batch": k[4],
                     "shape": f"{k[0]} T={k[1]}", "suite": m["suite_samples_per_s"], "suite_text": x("suite_samples_per_s", ",.0f"),
                     "raw": x("raw_samples_per_s", ",.0f"), "ratio": x("suite_vs_raw", ".3f"), "fused": x("fused_vs_cell", ".2f"),
                     "attn": x("attn_vs_base_step_time", ".2f"), "compile": x("compile_vs_eager", ".2f"),
                     "data": format(100 * m["data_share"], ".1f") if "data_share" in m else "–",
                     "act": x("activation_mb", ".1f"), "hw": r.tags.get("gpu") or r.tags.get("cpu", "")})
    return rows


# -- the site ----------------------------------------------------------------------------------------------

def write_csv(path: Path, all_boards: list[Board]):
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["task", "seq_len", "variant", "model", "tuned", "n", "n_failed", "n_missing", "metric", "test_mean",
                "test_std", "test_vs_chance_mean", "test_vs_chance_std", "solved", "n_params",
                "train_samples_per_s_mean", "train_samples_per_s_std", "run_ids"])
    num = lambda v: "" if v is None else repr(v)  # noqa: E731
    for b in all_boards:
        for r in b.rows:
            c = r.cells
            w.writerow([b.setting.task, b.setting.seq_len, b.setting.variant, r.model, str(r.tuned).lower(), len(r.runs),
                        len(r.failed), len(r.missing), b.metric or "", num(c["test_metric"]["mean"]), num(c["test_metric"]["std"]),
                        num(c["test_vs_chance"]["mean"]), num(c["test_vs_chance"]["std"]),
                        c["solved"]["text"].replace("–", ""), num(c["n_params"]["mean"]),
                        num(c["train_samples_per_s"]["mean"]), num(c["train_samples_per_s"]["std"]),
                        " ".join(run.id for _, run in sorted(r.runs.items()))])
    path.write_text(out.getvalue())


def task_section(client, board: Board, by_role: dict, out: Path, tmp: str) -> dict:
    """Everything a task page shows for one setting: leaderboard, plots, tuning, gradient flow, attention."""
    s = board.setting
    section = {"board": board, "figures": [], "studies": study_rows(by_role["study"], s),
               "gradflow": gradflow_section(client, board, by_role["gradflow"], out, tmp),
               "attention": attention_section(client, board, out, tmp)}
    if not any(r.runs for r in board.rows):
        return section
    h = histories(client, board)
    name = "accuracy" if board.metric == "acc" else "MSE"
    models = ", ".join(r.label for r in board.rows if r.runs)
    for x_key, what in (("epoch", "epoch"), ("elapsed", "wall-clock seconds")):
        plot = f"plots/{s.slug}-val-{x_key}.svg"
        if plot_curves(board, h, x_key, out / plot):
            section["figures"].append({"src": plot, "caption": f"Validation {name} against {what}",
                                       "alt": f"Line chart of validation {name} against {what} on {s.label}, a line "
                                              f"a model (mean over seeds, band from min to max): {models}."})
    plot = f"plots/{s.slug}-size.svg"
    if plot_size(board, out / plot):
        section["figures"].append({"src": plot, "caption": f"Test {name} against parameter count",
                                   "alt": f"Scatter of test {name} against parameters on {s.label}, a point a model "
                                          f"(error bar: std over seeds): {models}."})
    return section


def _environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    return env


def _clear(out: Path):
    """Remove what an earlier build wrote (only names the report owns), so no stale page survives."""
    for name in [*OWNED, *(p.name for p in out.glob("task-*.html"))]:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def build(uri: str, names: list[str] | None, profile: str | None, out: str | Path | None = None,
          ui: str | None = None) -> Path:
    """Read the experiments, write the site into `out` (default reports/<first experiment>/); returns index.html."""
    import os

    import matplotlib

    from tasks import TASKS

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    client = open_store(uri)
    experiments = find_experiments(client, uri, names, profile)
    runs = [r for e in experiments for r in read_runs(client, e.experiment_id)]
    if not any(r.role != "other" for r in runs):
        raise UserError(f"no runs in experiment {', '.join(e.name for e in experiments)} of {redact(uri)}; "
                        "run `make benchmark` first")
    if ui is None:  # a tracking server serves its UI too; links never carry credentials
        parts = urlsplit(uri)
        server = parts.scheme in ("http", "https")
        ui = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}" if server else DEFAULT_UI
    out = Path(out) if out else Path("reports") / re.sub(r"[^\w.-]+", "_", experiments[0].name)
    out.mkdir(parents=True, exist_ok=True)
    _clear(out)
    (out / "plots").mkdir()
    (out / "img").mkdir()
    by_role = defaultdict(list)
    for r in runs:
        by_role[r.role].append(r)
    cells = by_role["cell"]
    profiles = {r.tags["profile"] for r in cells if r.tags.get("profile")}
    planned = planned_cells(profiles) if profiles else None
    all_boards = boards(cells, planned, load_references())
    env = _environment()
    common = {"experiments": experiments, "rebuild": "rnnbench report " + " ".join(f"--experiment {e.name}" for e in experiments),
              "ui": ui.rstrip("/") if ui else "", "speed": bool(by_role["speed"])}
    tasks = defaultdict(list)
    with matplotlib.rc_context({"svg.hashsalt": "rnnbench-report", "svg.fonttype": "path"}), \
            tempfile.TemporaryDirectory() as tmp:
        for board in all_boards:
            tasks[board.setting.task].append(task_section(client, board, by_role, out, tmp))
        sweeps = {r.tags.get("task") for r in by_role["sweep"]} - {None}
        task_order = {t: i for i, t in enumerate(TASKS)}
        for task in sorted(sweeps - set(tasks), key=lambda t: (task_order.get(t, len(task_order)), t)):
            tasks[task] = []  # a sweep without a benchmark still gets its page
        horizons = {t: horizon_section(client, by_role["sweep"], t, out, tmp) for t in tasks}
        speed = speed_rows(by_role["speed"])
        if speed:
            plot_speed(speed, out / "plots/speed.svg")
    common["tasks"] = list(tasks)
    pages = {"index.html": env.get_template("index.html").render(
        **common, page="index", boards=all_boards, facts=facts(all_boards, experiments, planned), horizons=horizons,
        planned=planned is not None)}
    for task, sections in tasks.items():
        pages[f"task-{task}.html"] = env.get_template("task.html").render(
            **common, page=task, task=task, sections=sections, horizon=horizons.get(task))
    if speed:
        pages["speed.html"] = env.get_template("speed.html").render(**common, page="speed", rows=speed)
    for name, text in pages.items():
        (out / name).write_text(text)
    (out / "summary.md").write_text(env.get_template("summary.md").render(
        **common, boards=all_boards, facts=facts(all_boards, experiments, planned)))
    write_csv(out / "leaderboard.csv", all_boards)
    shutil.copyfile(HERE / "templates" / "style.css", out / "style.css")
    return out / "index.html"
