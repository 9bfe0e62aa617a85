"""Every task and model defined in the packages is registered (a file without its registry line fails here)."""
import importlib
import inspect
from pathlib import Path

import suite.models as models
from suite.models import MODELS
from tasks import TASKS

ROOT = Path(__file__).resolve().parent.parent


def defined(package_dir: Path, package: str, is_entry) -> set:
    """Classes defined in the package's modules that are registry entries (by what they declare)."""
    found = set()
    for path in package_dir.glob("*.py"):
        module = importlib.import_module(f"{package}.{path.stem}")
        found |= {c for _, c in inspect.getmembers(module, inspect.isclass)
                  if c.__module__ == module.__name__ and is_entry(c)}
    return found


def test_every_task_module_is_registered():
    modules = {p.stem for p in (ROOT / "tasks").glob("*.py") if p.stem not in ("__init__", "base")
               and not p.stem.startswith("_")}  # _mnist.py: the MNIST loader the mnist_* tasks share
    registered = {t.__module__.split(".")[-1] for t in TASKS.values()}
    assert modules == registered
    assert defined(ROOT / "tasks", "tasks", lambda c: isinstance(getattr(c, "name", None), str)) == set(TASKS.values())


def test_task_names_match_keys_and_kinds_are_known():
    from tasks.base import OUTPUT_KINDS

    for name, task in TASKS.items():
        assert task.name == name
        assert task.output_kind in OUTPUT_KINDS


def test_every_model_module_is_registered():
    folder = Path(models.__file__).parent
    entries = defined(folder, "suite.models", lambda c: bool(getattr(c, "name", "")) and hasattr(c, "Config"))
    assert entries == set(MODELS.values())
    assert all(name == m.name for name, m in MODELS.items())
    assert set(MODELS) == {"rnn", "irnn", "lstm", "gru", "attn_rnn", "lru", "transformer", "mingru", "minlstm", "hawk",
                           "s4d", "mamba", "mamba2", "mlstm", "gated_deltanet"}
