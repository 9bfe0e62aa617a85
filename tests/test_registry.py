"""Every task file and every model is registered (a file without its registry line fails here)."""
from pathlib import Path

import suite.models as models
from suite.models import MODELS
from tasks import TASKS

ROOT = Path(__file__).resolve().parent.parent


def test_every_task_module_is_registered():
    modules = {p.stem for p in (ROOT / "tasks").glob("*.py") if p.stem not in ("__init__", "base")}
    registered = {t.__module__.split(".")[-1] for t in TASKS.values()}
    assert modules == registered


def test_task_names_match_keys_and_kinds_are_known():
    from tasks.base import OUTPUT_KINDS

    for name, task in TASKS.items():
        assert task.name == name
        assert task.output_kind in OUTPUT_KINDS


def test_every_model_module_is_registered():
    files = {p.stem for p in Path(models.__file__).parent.glob("*.py") if p.stem != "__init__"}
    used = {getattr(m, "func", m).__module__.split(".")[-1] for m in MODELS.values()}
    assert files == used
    assert set(MODELS) == {"rnn", "lstm", "gru", "attn_rnn"}
