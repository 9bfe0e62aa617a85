"""Real PostgreSQL and MLflow tracking server processes on 127.0.0.1, for the cluster tests.

PostgreSQL refuses to run as root: as root the server runs as the `postgres` user (Debian's package
creates it). Authentication is `trust` on loopback, so any password in a URL is accepted; the tests
put one in to check it is never written anywhere.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
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


class MlflowServer:
    """`rnnbench server` (mlflow server) on 127.0.0.1 against a backend store; restartable."""

    def __init__(self, backend: str, artifacts: Path, log: Path, args=(), env=None, cert: Path | None = None):
        self.backend, self.artifacts, self.log, self.port = backend, artifacts, log, free_port()
        self.url = f"{'https' if cert else 'http'}://127.0.0.1:{self.port}"
        self.args, self.env, self.cert, self.proc = list(args), env or {}, cert, None
        self.start()

    def start(self, timeout: float = 180):
        import ssl

        with open(self.log, "a") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "suite", "server", "--backend", self.backend,
                                          "--artifacts", str(self.artifacts), "--port", str(self.port), "--workers", "1",
                                          *self.args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         env={**os.environ, **self.env}, cwd=Path(self.artifacts).parent)
        context = ssl.create_default_context(cafile=str(self.cert)) if self.cert else None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(self.url + "/health", timeout=2, context=context).status == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {Path(self.log).read_text()[-2000:]}")
            time.sleep(0.5)
        raise RuntimeError(f"mlflow server not up in {timeout} s: {Path(self.log).read_text()[-2000:]}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
