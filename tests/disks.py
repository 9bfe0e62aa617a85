"""Real hostile disks for the fault tests: a read-only folder (a read-only bind mount) and a small disk (a tmpfs of
a few hundred KB), made where the machine lets us mount (root); elsewhere the same conditions as the kernel would
report them: a folder without write permission, and writes refused with ENOSPC once the budget is spent."""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from pathlib import Path


def _mount(*args) -> bool:
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def read_only(folder: Path) -> contextlib.AbstractContextManager:
    """`folder` (made, with what is in it) read-only until the block ends."""

    @contextlib.contextmanager
    def held():
        if _mount("--bind", str(folder), str(folder)):
            try:
                if not _mount("-o", "remount,bind,ro", str(folder)):
                    raise RuntimeError(f"cannot remount {folder} read-only")
                yield "read-only file system"
            finally:
                subprocess.run(["umount", "-l", str(folder)], capture_output=True)
            return
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
        for p in modes:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield "not writable by this user"
        finally:
            for p, mode in modes.items():
                p.chmod(mode)

    return held()


@contextlib.contextmanager
def small_disk(folder: Path, kb: int, monkeypatch):
    """`folder` on a disk of `kb` KB: a tmpfs where we may mount, else every file copied into it (how MLflow
    writes artifacts) refused with ENOSPC once `kb` KB have gone in."""
    folder.mkdir(parents=True, exist_ok=True)
    if _mount("-t", "tmpfs", "-o", f"size={kb}k", "tmpfs", str(folder)):
        try:
            yield "tmpfs"
        finally:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)
        return
    copy, used = shutil.copyfile, [0]

    def copyfile(src, dst, *args, **kwargs):
        if str(Path(dst).resolve()).startswith(str(folder.resolve())):
            used[0] += os.path.getsize(src)
            if used[0] > kb * 1024:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return copy(src, dst, *args, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", copyfile)
    yield "simulated"
