"""Shared fixtures: offline hub, a temporary MLflow store, small configs."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never reach the hub
os.environ.pop("MLFLOW_TRACKING_URI", None)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    """One SQLite MLflow store for the session (creating one costs seconds); tests use their own experiments."""
    root = tmp_path_factory.mktemp("store")
    return root, f"sqlite:///{root}/mlflow.db"


@pytest.fixture
def in_store(store, monkeypatch):
    """Run from the store's folder, so ./mlartifacts lands there too."""
    root, uri = store
    monkeypatch.chdir(root)
    return uri


@pytest.fixture(scope="session", autouse=True)
def listops_cache(tmp_path_factory):
    """Drawn ListOps sets go to the session's temporary folder, not the user's cache (subprocesses too)."""
    os.environ["RNNBENCH_CACHE"] = str(tmp_path_factory.mktemp("rnnbench-cache"))


@pytest.fixture(scope="session", autouse=True)
def torch_settings():
    from suite.train import init_torch

    init_torch()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    """A real PostgreSQL server on 127.0.0.1 (skipped where none is installed, unless CI requires it)."""
    from suite.pgtemp import Postgres, pg_bin

    if not (pg_bin("initdb") and pg_bin("pg_ctl")):
        if os.environ.get("RNNBENCH_REQUIRE_SERVERS"):
            pytest.fail("PostgreSQL (initdb, pg_ctl) not found; .ci/run installs it")
        pytest.skip("PostgreSQL not installed (apt-get install postgresql); CI runs these tests")
    server = Postgres()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mlflow_server(postgres, tmp_path_factory):
    """A real `mlflow server` on 127.0.0.1 with its runs in PostgreSQL."""
    from tests.servers import MlflowServer

    root = tmp_path_factory.mktemp("mlflow-server")
    server = MlflowServer(postgres.create("mlflow"), root / "artifacts", root / "server.log")
    yield server
    server.stop()
