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
def torch_settings():
    from suite.runner import init_torch

    init_torch()
