"""Published figures beside our results, only where their protocol matches ours (suite/references.yaml)."""
from __future__ import annotations

from pathlib import Path

import yaml

from suite.scoring import Board, fmt

REFERENCES = Path(__file__).resolve().parent.parent / "references.yaml"


def load_references() -> list[dict]:
    return yaml.safe_load(REFERENCES.read_text())["figures"]


DATA = {"full-mnist": "full MNIST (60,000 training digits)", "mnist-5k": "the 5,000-digit subset (3,500 training)",
        "synthetic": "generated sequences"}


def data_class(source: str) -> str:
    """A run's data_source tag as the references name data: full-mnist, mnist-5k or synthetic."""
    return "full-mnist" if source.startswith(("hf:", "local:")) else source


def why_not(figure: dict, board: Board) -> str | None:
    """Why a published figure is not comparable with this board's runs; None when it is."""
    from tasks import TASKS

    s = board.setting
    ours = {data_class(r.tags.get("data_source", "")) for row in board.rows for r in row.runs.values()}
    definition = getattr(TASKS.get(s.task), "metric_definition", "")
    if figure.get("seq_len", s.seq_len) != s.seq_len:
        return f"measured at T={figure['seq_len']}, ours at T={s.seq_len}"
    if ours and ours != {figure["data"]}:
        mine = ", ".join(DATA.get(d, d) for d in sorted(ours))
        return f"trained on {DATA.get(figure['data'], figure['data'])}; these runs on {mine}"
    if figure["metric"] != f"test_{board.metric}" or figure.get("metric_definition") != definition:
        return f"reports {figure.get('metric_definition') or figure['metric']}; ours is {definition or board.metric}"
    return None


def attach_references(board: Board, references: list[dict]):
    """Published figures for this task and variant: beside our row of the same model when the protocol matches,
    else listed as not comparable, with the reason."""
    s = board.setting
    mine = [f for f in references if f["task"] == s.task and f.get("variant", "") == s.variant]
    board.incomparable = [{**f, "why": why} for f in mine if (why := why_not(f, board))]
    found = [f for f in mine if why_not(f, board) is None]
    sources = list(dict.fromkeys(f["source"] for f in found))
    board.references = [{**f, "n": sources.index(f["source"]) + 1, "text": fmt(f["value"], board.metric)}
                        for f in found]
    for row in board.rows:
        row.reference = next((f for f in board.references if f["model"] == row.model and not row.tuned), None)
