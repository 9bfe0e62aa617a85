"""The MLflow store: where it is, the experiment, finding finished cells, and run facts."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from suite.errors import UserError

DEFAULT_URI = "sqlite:///mlflow.db"  # MLflow's own default store; artifacts go to ./mlartifacts


def tracking_uri(cli_uri: str | None = None, profile_uri: str | None = None) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else the profile's stores.tracking_uri, else the local store."""
    return cli_uri or os.environ.get("MLFLOW_TRACKING_URI") or profile_uri or DEFAULT_URI


def redact(uri: str) -> str:
    """The URI without a password, for logs, tags and messages."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def reachable(uri: str) -> bool:
    """Whether a tracking server answers /health (a database store: whether MLflow can search it)."""
    if urlsplit(uri).scheme in ("http", "https"):
        import requests

        try:
            return requests.get(uri.rstrip("/") + "/health", timeout=5).ok
        except requests.RequestException:
            return False
    try:
        from mlflow import MlflowClient

        MlflowClient(uri).search_experiments(max_results=1)
        return True
    except Exception:
        return False


def connect(uri: str, experiment: str) -> str:
    """Point MLflow at the store (checking a server answers) and return the experiment id."""
    import mlflow

    scheme = urlsplit(uri).scheme
    if scheme in ("http", "https"):
        import requests

        try:
            requests.get(uri.rstrip("/") + "/health", timeout=5).raise_for_status()
        except requests.RequestException as e:
            raise UserError(f"--tracking-uri: tracking server {redact(uri)} unreachable ({type(e).__name__}); "
                            "start it (`make server`) or unset MLFLOW_TRACKING_URI for the local store") from None
    elif scheme == "sqlite":
        db = Path(uri.removeprefix("sqlite:///"))
        if not db.parent.exists():
            raise UserError(f"--tracking-uri: folder {db.parent} for {uri} does not exist")
    elif scheme in ("", "file"):
        raise UserError(f"--tracking-uri: {uri}: MLflow 3 needs a database store; use e.g. sqlite:///mlflow.db")
    mlflow.set_tracking_uri(uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    artifacts = Path("mlartifacts").resolve().as_uri() if scheme == "sqlite" else None
    try:
        return mlflow.create_experiment(experiment, artifact_location=artifacts)
    except mlflow.exceptions.MlflowException as e:  # another job created it a moment ago
        found = mlflow.get_experiment_by_name(experiment)
        if found is None:
            raise UserError(f"--experiment: cannot create {experiment} in {redact(uri)} ({e.error_code})") from None
        return found.experiment_id


def finished_runs(experiment_id: str, hashes: list[str] | None = None) -> dict[str, object]:
    """FINISHED runs of the experiment by config_hash (the newest when a cell ran more than once)."""
    from mlflow import MlflowClient

    runs = MlflowClient().search_runs([experiment_id], "attributes.status = 'FINISHED'", max_results=50_000,
                                      order_by=["attributes.start_time ASC"])
    by_hash = {r.data.tags.get("config_hash"): r for r in runs if "optuna_trial" not in r.data.tags}  # not trials
    return {h: r for h, r in by_hash.items() if h and (hashes is None or h in hashes)}


def git_sha() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + "-dirty" if dirty else sha) if sha else "unknown"


def environment() -> dict[str, str]:
    """Facts about the machine and libraries, recorded as tags on every run."""
    import torch

    env = {"torch_version": torch.__version__, "python_version": platform.python_version(), "cpu": _cpu_model(), "cpu_count": str(os.cpu_count()),
           "torch_threads": str(torch.get_num_threads())}
    if torch.cuda.is_available():
        env |= {"gpu": torch.cuda.get_device_name(), "cuda_version": str(torch.version.cuda),
                "cudnn_version": str(torch.backends.cudnn.version())}
    return env


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = str(v)
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
