"""The code a cell's result depends on, hashed: its model's file and what that imports among the models, its task's
file and what that imports among the tasks, and the shared training core. The syntax tree is hashed, without
docstrings, so comments, docstrings and formatting change nothing; neither does any other file (the CLI, the
report, tuning, the registries), nor a clean or dirty work tree."""
from __future__ import annotations

import ast
import functools
import hashlib
import inspect
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ("suite/module.py", "suite/data.py", "suite/train.py", "suite/callbacks.py", "suite/models/base.py",
        "suite/models/network.py", "suite/models/init.py", "tasks/base.py")  # what every cell trains through
REGISTRIES = ("suite/models/registry.py", "suite/models/__init__.py", "tasks/__init__.py")


@functools.lru_cache(maxsize=None)
def code_fingerprint(model: str, task: str) -> str:
    """12 hex digits naming the code of a model x task cell."""
    from suite.models import MODELS
    from tasks import TASKS

    files = set(CORE) | closure(_file(MODELS[model]), "suite/models") | closure(_file(TASKS[task]), "tasks")
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + _tree(name).encode() + b"\0")
    return digest.hexdigest()[:12]


def closure(start: str, folder: str) -> set[str]:
    """`start` and the files of `folder` it imports, directly or through each other (registries left out)."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or name in REGISTRIES:
            continue
        seen.add(name)
        todo += [path for path in _imports(name) if path.startswith(folder + "/")]
    return seen


@functools.lru_cache(maxsize=None)
def _imports(name: str) -> tuple[str, ...]:
    """The repository's files the file imports (read once a process: every cell of a plan asks)."""
    found = []
    for node in ast.walk(ast.parse((ROOT / name).read_text())):
        modules = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                   [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        found += [path for path in (m.replace(".", "/") + ".py" for m in modules) if (ROOT / path).is_file()]
    return tuple(found)


def _file(cls) -> str:
    return Path(inspect.getsourcefile(cls)).resolve().relative_to(ROOT).as_posix()


@functools.lru_cache(maxsize=None)
def _tree(name: str) -> str:
    """The file's syntax tree without docstrings, as text."""
    tree = ast.parse((ROOT / name).read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and \
                isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)
