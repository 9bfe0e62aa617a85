"""The report's output folder: the report writes only into a folder it owns and removes only what it wrote there.

A folder is the report's when it does not exist yet, is empty, or holds MARKER, the list of every file the last
build wrote. A rebuild removes exactly those files (and the folders they leave empty), so no stale page survives
and anything else in the folder (a holiday.jpg put into img/) stays. A folder from before the marker is adopted
when it holds an index.html and nothing but names a report writes. Anything else is refused in one line before a
file is written: the filesystem root, the home folder, a folder inside an MLflow store's artifacts, an existing
file, a path that does not resolve (a symlink loop), a folder holding files the report did not write.
"""
from __future__ import annotations

import fnmatch
from pathlib import Path
from urllib.parse import unquote, urlsplit

from suite.errors import UserError
from suite.stores import writable

MARKER = ".rnnbench-report"
HEADER = "# written by `rnnbench report`: the files it wrote here, which the next build replaces (nothing else)"
NAMES = ("index.html", "speed.html", "style.css", "summary.md", "leaderboard.csv", "results.json", "task-*.html",
         "plots/*.svg", "img/*.png", MARKER)  # what a build writes, for adopting a folder from before the marker


def _artifact_roots(experiments) -> list[Path]:
    """The local folders the store keeps these experiments' artifacts in (a server's are not on this disk)."""
    roots = []
    for e in experiments:
        parts = urlsplit(e.artifact_location or "")
        if parts.scheme in ("", "file") and e.artifact_location:
            root = Path(unquote(parts.path) if parts.scheme else e.artifact_location).resolve()
            roots.append(root.parent if root.parent.name in ("mlartifacts", "mlruns") else root)  # MLflow's defaults
    return roots


def claim(out: Path, experiments, flag: str = "--out") -> list[Path]:
    """Check `out` can be the report's folder and return the files its last build wrote (relative paths); raises
    UserError, having written nothing, when it cannot."""
    try:
        where = out.resolve(strict=False)
    except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop (Python 3.11)
        raise UserError(f"{flag}: {out} does not resolve ({e}); name a plain folder (nothing was written)") from None
    if where in (Path(where.anchor), Path.home().resolve()):
        what = "the filesystem root" if where == Path(where.anchor) else "your home folder"
        raise UserError(f"{flag}: {out} is {what}; name a folder of its own, e.g. reports/mine (nothing was written)")
    for root in _artifact_roots(experiments):
        if where == root or root in where.parents:
            raise UserError(f"{flag}: {out} is inside the MLflow store's artifacts ({root}); name a folder outside "
                            "it, e.g. reports/mine (nothing was written)")
    if where.exists() and not where.is_dir():
        raise UserError(f"{flag}: {out} is a file, not a folder; name a new or empty folder (nothing was written)")
    writable(out, flag)
    if not where.exists():
        return []
    marker = where / MARKER
    if marker.is_file():
        return _listed(where, marker)
    held = []
    for path in where.rglob("*"):  # lazily: a folder of many files (a home, a checkout) is refused at its first
        name = path.relative_to(where).as_posix()
        if not path.is_dir() and not any(fnmatch.fnmatchcase(name, n) for n in NAMES):
            _foreign(out, flag, name)
        held += [] if path.is_dir() else [name]
    if held and "index.html" not in held:
        _foreign(out, flag, held[0])
    return [Path(h) for h in sorted(held)]


def _foreign(out: Path, flag: str, name: str):
    raise UserError(f"{flag}: {out} holds files the report did not write (e.g. {name}); name a new or empty folder "
                    "(nothing was written)")


def _listed(where: Path, marker: Path) -> list[Path]:
    """The marker's files, each a relative path inside the folder (a line that is not is ignored: the marker is
    read back like any other input, so it can only ever name files under `where`)."""
    found = []
    for line in marker.read_text(errors="replace").splitlines():
        path = Path(line.strip())
        if not line.strip() or line.startswith("#") or path.is_absolute() or ".." in path.parts:
            continue
        found.append(path)
    return found


def clear(out: Path, written: list[Path]) -> dict:
    """Remove the files the last build wrote, then the folders that leaves empty; nothing else. Returns what the
    folder still holds (path -> size and time), which the build did not write unless it replaces it."""
    where = out.resolve()
    for rel in written:
        path, parent = where / rel, (where / rel).parent.resolve()
        if (path.is_file() or path.is_symlink()) and (parent == where or where in parent.parents):
            path.unlink()
    for folder in sorted({(where / rel).parent for rel in written}, key=lambda p: -len(p.parts)):
        if folder != where and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return _held(where)


def seal(out: Path, kept: dict):
    """List in the marker every file this build wrote: those new or changed since clear() left `kept`."""
    written = [rel for rel, stat in _held(out).items() if kept.get(rel) != stat and rel != MARKER]
    (out / MARKER).write_text("\n".join([HEADER, *written]) + "\n")


def _held(where: Path) -> dict:
    if not where.is_dir():
        return {}
    return {p.relative_to(where).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(where.rglob("*")) if p.is_file()}
