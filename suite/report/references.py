"""Published figures beside our results, only where their protocol matches ours (suite/references.yaml)."""
from __future__ import annotations

from pathlib import Path

import yaml

from suite.scoring import Board, fmt

REFERENCES = Path(__file__).resolve().parent.parent / "references.yaml"


def load_references() -> list[dict]:
    return yaml.safe_load(REFERENCES.read_text())["figures"]


DATA = {"full-mnist": "full MNIST (60,000 training digits)", "mnist-5k": "the 5,000-digit subset (3,500 training)",
        "cifar10": "CIFAR-10 (50,000 training images)", "imdb": "IMDb (25,000 training reviews)",
        "synthetic": "generated sequences"}
WHOLE = {"mnist_rows": "full-mnist", "mnist_pixels": "full-mnist", "scifar": "cifar10", "lra_text": "imdb"}  # the
# data a task's hub or local copy is (a run capped by max_train or max_eval is told apart by a figure's `config`)


def data_class(source: str, task: str = "mnist_pixels") -> str:
    """A run's data_source tag as the references name data (full-mnist, mnist-5k, cifar10, imdb or synthetic)."""
    return WHOLE.get(task, source) if source.startswith(("hf:", "local:")) else source


def why_not(figure: dict, board: Board) -> str | None:
    """Why a published figure is not comparable with this board's runs; None when it is."""
    from tasks import TASKS

    s = board.setting
    runs = [r for row in board.rows for r in row.runs.values()]
    ours = {data_class(r.tags.get("data_source", ""), s.task) for r in runs}
    definition = getattr(TASKS.get(s.task), "metric_definition", "")
    if figure.get("seq_len", s.seq_len) != s.seq_len:
        return f"measured at T={figure['seq_len']}, ours at T={s.seq_len}"
    if ours and ours != {figure["data"]}:
        mine = ", ".join(DATA.get(d, d) for d in sorted(ours))
        return f"trained on {DATA.get(figure['data'], figure['data'])}; these runs on {mine}"
    if figure["metric"] != f"test_{board.metric}" or figure.get("metric_definition") != definition:
        return f"reports {figure.get('metric_definition') or figure['metric']}; ours is {definition or board.metric}"
    for key, theirs in figure.get("config", {}).items():
        mine = sorted({r.params.get(f"task.{key}") for r in runs} - {None})
        if mine and mine != [str(theirs)]:
            return f"measured with {key} {theirs}; these runs with {key} {', '.join(mine)}"
    return None


def attach_references(board: Board, references: list[dict]):
    """Published figures for this task and variant: beside our row of the same model when the protocol matches
    (all of them listed by source, numbered), else listed as not comparable, one line per source and reason."""
    s = board.setting
    mine = [{**f, "text": fmt(f["value"], board.metric)} for f in references
            if f["task"] == s.task and f.get("variant", "") == s.variant]
    found, groups = [], {}
    for f in mine:
        if (why := why_not(f, board)) is None:
            found.append(f)
        else:
            group = groups.setdefault((f["source"], why), {"source": f["source"], "why": why, "figures": []})
            group["figures"].append(f)
    sources = list(dict.fromkeys(f["source"] for f in found))
    board.references = [{**f, "n": sources.index(f["source"]) + 1} for f in found]
    board.incomparable = list(groups.values())
    for row in board.rows:
        row.reference = next((f for f in board.references if f["model"] == row.model and not row.tuned), None)


def quoted(figures: list[dict]) -> str:
    """Figures as a list's line says them: `lstm 98.9% (quoting Le et al. 2015), BN-LSTM 99.0%`."""
    return ", ".join(f"{f['model']} {f['text']}" + (f" ± {fmt(f['spread'], 'acc')}" if "spread" in f else "") +
                     (f" (quoting {f['secondary']})" if f.get("secondary") else "") for f in figures)
