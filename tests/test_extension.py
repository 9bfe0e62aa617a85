"""The extension contract: a new model is one file plus its line in the model registry, a new task one file plus
its line in the task registry, and every command works on them with nothing else changed.

The test copies the packages into a temporary folder, drops in tests/toy/toy_model.py and toy_task.py, adds
each one's import and name to its registry, and runs the CLI there in fresh processes.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

pytestmark = pytest.mark.slow  # every command in fresh processes on a copy of the packages: `make test-all`

ROOT = Path(__file__).resolve().parent.parent
TOY = Path(__file__).resolve().parent / "toy"


def register(registry: Path, module: str, cls: str):
    """One registration: the import above the tuple and the class in it (the last name of the tuple)."""
    text = registry.read_text()
    text = re.sub(r"(\n\n)(\w+: dict)", rf"\nfrom {module} import {cls}\1\2", text, count=1)
    text = re.sub(r"\)\}\n", f", {cls})}}\n", text, count=1)
    registry.write_text(text)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    root = tmp_path_factory.mktemp("extended")
    for folder in ("suite", "tasks", "configs"):
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(TOY / "toy_model.py", root / "suite" / "models" / "toy.py")
    shutil.copy(TOY / "toy_task.py", root / "tasks" / "toy_sign.py")
    register(root / "suite" / "models" / "registry.py", "suite.models.toy", "Toy")
    register(root / "tasks" / "__init__.py", "tasks.toy_sign", "ToyTask")
    changed = [p for p in root.rglob("*.py") if (ROOT / p.relative_to(root)).exists()
               and (ROOT / p.relative_to(root)).read_text() != p.read_text()]
    assert sorted(p.relative_to(root).as_posix() for p in changed) == ["suite/models/registry.py", "tasks/__init__.py"]
    return root


def rnnbench(root: Path, *argv, timeout=600):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = str(root)
    done = subprocess.run([sys.executable, "-m", "suite", *argv], cwd=root, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def runs(root, experiment):
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id], max_results=1000)


def test_a_new_model_and_task_run_through_every_command(sandbox):
    listing = rnnbench(sandbox, "list")
    assert "toy" in listing and "toy_sign (class_last)" in listing
    where = subprocess.run([sys.executable, "-c", "import suite; print(suite.__file__)"], cwd=sandbox, text=True,
                           capture_output=True, env={**os.environ, "PYTHONPATH": str(sandbox)}).stdout
    assert where.startswith(str(sandbox))  # the copy runs, not the installed package

    out = rnnbench(sandbox, "benchmark", "--profile", "smoke", "--models", "toy,gru", "--tasks", "toy_sign,adding")
    assert "4 trained, 0 skipped" in out
    cells = runs(sandbox, "rnnbench-smoke")
    assert {(r.data.tags["model"], r.data.tags["task"]) for r in cells if r.info.status == "FINISHED"} == {
        (m, t) for m in ("toy", "gru") for t in ("toy_sign", "adding")}
    toy = next(r for r in cells if r.data.tags["model"] == "toy" and r.data.tags["task"] == "toy_sign")
    assert toy.data.params["model.leak"] == "0.5" and toy.data.metrics["chance_loss"] > 0.69

    out = rnnbench(sandbox, "tune", "--profile", "smoke", "--model", "toy", "--task", "toy_sign", "--trials", "2")
    assert "2/2 done" in out
    trials = [r for r in runs(sandbox, "rnnbench-tune-smoke") if r.data.tags.get("rnnbench_role") == "trial"]
    assert len(trials) == 2 and all("model.leak" in r.data.params for r in trials)  # the model's own search space

    out = rnnbench(sandbox, "horizon", "--task", "toy_sign", "--profile", "smoke", "--models", "toy",
                   "--budget-steps", "8")
    assert "T=4" in out and "T=8" in out  # the ladder the task declares

    out = rnnbench(sandbox, "gradflow", "--task", "toy_sign", "--profile", "smoke", "--models", "toy")
    assert re.search(r"toy\s+init [+-]\d", out)
    (flow,) = [r for r in runs(sandbox, "rnnbench-gradflow-smoke") if r.data.tags.get("rnnbench_role") == "gradflow"]
    assert "grad_decay_per_step_toy" in flow.data.metrics

    out = rnnbench(sandbox, "report", "--profile", "smoke")
    page = (sandbox / "reports" / "rnnbench-smoke" / "task-toy_sign.html").read_text()
    assert "toy" in page and "Dependency horizon" in page
    assert "toy_sign T=8" in (sandbox / "reports" / "rnnbench-smoke" / "index.html").read_text()
