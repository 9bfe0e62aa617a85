"""The report's view of the MLflow store: runs by the role their command wrote, and what was planned."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from suite.errors import UserError
from suite.tracking import PLAN, ROLE, redact

COMPANIONS = ("horizon", "tune", "gradflow")  # rnnbench-<kind>-<profile>, reported with rnnbench-<profile>


@dataclass
class Run:
    """One MLflow run, as the report reads it."""

    id: str
    experiment_id: str
    status: str
    start: int
    name: str
    tags: dict
    params: dict
    metrics: dict

    @property
    def role(self) -> str:
        """What the run is, as the command that made it wrote: cell, trial, sweep, sweep_cell, study, speed,
        gradflow (suite/tracking.py: ROLE); "other" for runs rnnbench did not make."""
        return self.tags.get(ROLE, "other")


@dataclass(frozen=True)
class Setting:
    """A task at one length and variant: one leaderboard."""

    task: str
    seq_len: int
    variant: str = ""  # what the task calls it (Task.variant), e.g. "permuted" pixel MNIST

    @property
    def label(self) -> str:
        return f"{self.task}{f' ({self.variant})' if self.variant else ''} T={self.seq_len}"

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.label.lower()).strip("-")


def setting_of(run: Run) -> Setting:
    return Setting(run.tags["task"], int(run.tags["seq_len"]), run.tags.get("variant", ""))


def open_store(uri: str):
    """An MlflowClient on the store, after checking it is there (never creating an empty one)."""
    from mlflow import MlflowClient

    scheme = urlsplit(uri).scheme
    if scheme == "sqlite":
        db = Path(uri.removeprefix("sqlite:///"))
        if not db.is_file():
            raise UserError(f"no MLflow store at {uri} ({db} not found); run `make benchmark` first")
    elif scheme in ("http", "https"):
        import requests

        try:
            requests.get(uri.rstrip("/") + "/health", timeout=5).raise_for_status()
        except requests.RequestException as e:
            raise UserError(f"--tracking-uri: tracking server {redact(uri)} unreachable ({type(e).__name__})") from None
    return MlflowClient(uri)


def find_experiments(client, uri: str, names: list[str] | None, profile: str | None) -> list:
    """The named experiments; by default rnnbench-<profile> and those of its horizon, tune, gradflow and
    speed commands that exist."""
    wanted = names or [f"rnnbench-{profile}"]
    optional = [] if names else [*(f"rnnbench-{k}-{profile}" for k in COMPANIONS), "rnnbench-speed"]
    found = []
    for name in wanted:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            known = sorted(e.name for e in client.search_experiments(max_results=1000) if e.name != "Default")
            there = f"experiments there: {', '.join(known)}" if known else "it has none; run `make benchmark` first"
            raise UserError(f"unknown experiment '{name}' in {redact(uri)}; {there}")
        found.append(experiment)
    return found + [e for e in map(client.get_experiment_by_name, optional) if e is not None]


def read_runs(client, experiment_id: str) -> list[Run]:
    """Every active run of the experiment, oldest first."""
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        runs += [Run(r.info.run_id, r.info.experiment_id, r.info.status, r.info.start_time or 0, r.info.run_name or "",
                     dict(r.data.tags), dict(r.data.params), dict(r.data.metrics)) for r in page]
        token = page.token
        if not token:
            return sorted(runs, key=lambda r: (r.start, r.id))


def planned_cells(experiments: list) -> set | None:
    """(model, setting, seed) of every cell the experiments' benchmarks planned (their `rnnbench.plan` tag),
    as they planned them, whatever today's profiles say; None when no benchmark logged a plan."""
    blocks = [b for e in experiments for b in json.loads(e.tags.get(PLAN, "[]"))]
    if not blocks:
        return None
    return {(m, Setting(task, int(T), variant), seed) for b in blocks for m in b["models"] for seed in b["seeds"]
            for task, T, variant in b["settings"]}
