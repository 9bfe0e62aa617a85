"""A throw-away PostgreSQL server on 127.0.0.1 (initdb + pg_ctl on a temporary folder), for the scale benchmark
and the cluster tests.

PostgreSQL refuses to run as root: as root the server runs as the `postgres` user (Debian's package creates it).
Authentication is `trust` on loopback, so any password in a URL is accepted; the tests put one in to check it is
never written anywhere.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
from pathlib import Path

PASSWORD = "s3cret-pw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


class Postgres:
    """initdb + pg_ctl on a temporary folder; `url(db)` gives a SQLAlchemy URL with a password in it."""

    def __init__(self):
        import tempfile

        # a folder of its own in /tmp: pytest's folders are private to root, which postgres may not enter
        self.root, self.port = Path(tempfile.mkdtemp(prefix="rnnbench-pg-")), free_port()
        self.data = self.root / "pgdata"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.data.mkdir(parents=True)
        if self.as_user:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.data, "postgres")
        self._run(pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "rnnbench", "--no-sync")
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.data / "server.log"), "-w", "-t", "60", "-o",
                  f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off "
                  "-c max_connections=200", "start")

    def _run(self, *cmd):
        done = subprocess.run([*self.as_user, *cmd], capture_output=True, text=True, cwd=self.root)
        if done.returncode:
            raise RuntimeError(f"{cmd[0]} failed: {done.stderr.strip()[-1500:]}")

    def create(self, db: str) -> str:
        self._run(pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "rnnbench", db)
        return self.url(db)

    def url(self, db: str) -> str:
        return f"postgresql://rnnbench:{PASSWORD}@127.0.0.1:{self.port}/{db}"

    def stop(self):
        subprocess.run([*self.as_user, pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True, cwd=self.root)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
