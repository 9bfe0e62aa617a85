"""`rnnbench server` (an MLflow tracking server for jobs to share) and `rnnbench ui` (the MLflow UI on a store)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from suite.errors import UserError


def server(backend: str | None, artifacts: str, host: str, port: int, workers: int):
    from suite.stores import DEFAULT_URI, redact

    backend = backend or DEFAULT_URI
    if "://" not in backend:
        raise UserError(f"--backend: expected a database URI such as postgresql://USER:PASSWORD@HOST/mlflow "
                        f"(got {backend})")
    if workers < 1:
        raise UserError("--workers: needs at least 1")
    Path(artifacts).mkdir(parents=True, exist_ok=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: binding {host} exposes the server (no authentication) beyond this machine", file=sys.stderr)
    print(f"MLflow tracking server on http://{host}:{port} · backend {redact(backend)} · artifacts "
          f"{Path(artifacts).resolve()}\nPoint jobs at it: export MLFLOW_TRACKING_URI=http://{host}:{port}", flush=True)
    os.environ["MLFLOW_BACKEND_STORE_URI"] = backend  # not on the command line, where `ps` would show a password
    os.execvp(sys.executable, [sys.executable, "-m", "mlflow", "server", "--workers", str(workers),
                               "--artifacts-destination", str(Path(artifacts).resolve()),
                               "--host", host, "--port", str(port)])


def ui(uri: str, host: str, port: int):
    from suite.stores import redact

    if uri.startswith(("http://", "https://")):
        raise UserError(f"--tracking-uri: {uri} is a server already; open it in a browser")
    print(f"MLflow UI on http://{host}:{port}/#/experiments?workflowType=machine_learning (store {redact(uri)}); "
          "Ctrl-C stops it", flush=True)
    os.execvp(sys.executable, [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                               "--host", host, "--port", str(port)])
