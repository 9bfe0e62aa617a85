"""Reading YAML a user hands us (experiment files, search spaces, --set values) safely: bounded size, no aliases
(a "billion laughs" document would grow without bound), bounded nesting, UTF-8 only; one line on any fault."""
from __future__ import annotations

from pathlib import Path

import yaml

from suite.errors import UserError

MAX_BYTES = 1 << 20  # an experiment file is a screen or two of settings
MAX_DEPTH = 32  # sections within sections


def read_yaml(path: Path, what: str = "--config", name: str | None = None):
    """The document in `path` (None when it holds only comments), or one line saying what is wrong, naming the file
    `name` (default: its path)."""
    path = Path(path)
    name = name or str(path)
    if path.is_dir():
        yamls = sorted(p.name for p in path.glob("*.yaml"))[:3]
        raise UserError(f"{what}: {path} is a folder; name one YAML file in it"
                        + (f", e.g. {path / yamls[0]} (it has {', '.join(yamls)})" if yamls else " (it has none)"))
    if not path.is_file():
        raise UserError(f"{what}: {path} not found")
    if path.stat().st_size > MAX_BYTES:
        raise UserError(f"{name}: {path.stat().st_size:,} bytes; an experiment file is at most {MAX_BYTES:,}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{name}: not UTF-8 text (byte {e.start}); is it the YAML file you meant?") from None
    return parse_yaml(text, name)


def parse_yaml(text: str, where: str):
    """A YAML document from text, refusing aliases and deep nesting before anything is built from it."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise UserError(f"{where}: YAML aliases (*name) are not allowed here; write the values out")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise UserError(f"{where}: nested more than {MAX_DEPTH} levels deep")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{where}:{line}: not valid YAML ({getattr(e, 'problem', None) or type(e).__name__})") from None
