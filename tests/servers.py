"""A real MLflow tracking server process on 127.0.0.1, for the cluster tests (PostgreSQL: suite/pgtemp.py)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from suite.pgtemp import free_port


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
