"""Runs as they are read back from the store: the experiments a command reads, their runs (every page), what was
planned and what is registered. The scores (suite/scoring.py), the report and `rnnbench register` read these."""
from __future__ import annotations

import re
from dataclasses import dataclass

from suite.errors import UserError
from suite.roles import TAG, Role
from suite.stores import every, redact
from suite.tracking import plan_blocks

COMPANIONS = ("horizon", "tune", "gradflow")  # rnnbench-<family>-<profile>, reported with rnnbench-<profile>


@dataclass
class Run:
    """One MLflow run, as the scores and the report read it."""

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
        """What the run is, as the command that made it wrote (suite/roles.py); "other" for runs rnnbench did not
        make."""
        return self.tags.get(TAG, "other")

    @property
    def shown_status(self) -> str:
        """Its status; a RUNNING one whose worker is gone or silent says it is stale (reading writes nothing, so it
        does not reap it: the next job does)."""
        from suite.cluster import stale_from

        stale = self.status == "RUNNING" and stale_from(self.tags, self.start) is not None
        return "RUNNING but stale (its worker is gone or silent)" if stale else self.status


@dataclass(frozen=True, order=True)
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
        """The setting in a file name or page anchor."""
        return re.sub(r"[^a-z0-9]+", "-", self.label.lower()).strip("-")


def setting_of(run: Run) -> Setting:
    return Setting(run.tags["task"], int(run.tags["seq_len"]), run.tags.get("variant", ""))


def open_store(uri: str):
    """The client on the store, after checking it is there (never creating an empty one)."""
    from suite.stores import check_store, open_client

    check_store(uri, read_only=True)
    return open_client(uri)


def find_experiments(client, uri: str, names: list[str] | None, profile: str | None, auto: bool = False) -> list:
    """The named experiments; by default rnnbench-<profile> and those of its horizon, tune, gradflow and
    speed commands that exist. `auto`: the profile was not named, so when the store has no rnnbench-<profile>,
    the newest profile's results it holds are reported."""
    if not names and auto and client.get_experiment_by_name(f"rnnbench-{profile}") is None:
        from suite.experiment import PROFILES

        held = [e for e in every(client.search_experiments) if e.name.removeprefix("rnnbench-") in PROFILES]
        if held:
            profile = max(held, key=lambda e: e.last_update_time or 0).name.removeprefix("rnnbench-")
            print(f"profile auto → {profile} (the newest results in {redact(uri)})", flush=True)
    wanted = names or [f"rnnbench-{profile}"]
    optional = [] if names else [*(f"rnnbench-{f}-{profile}" for f in COMPANIONS), "rnnbench-speed",
                                 "rnnbench-reproduce"]
    found = []
    for name in wanted:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            known = sorted(e.name for e in every(client.search_experiments) if e.name != "Default")
            there = f"experiments there: {', '.join(known)}" if known else "it has none; run `make benchmark` first"
            raise UserError(f"unknown experiment '{name}' in {redact(uri)}; {there}")
        found.append(experiment)
    return found + [e for e in map(client.get_experiment_by_name, optional) if e is not None]


def cell_key(run) -> tuple:
    """What a leaderboard counts one run for: the setting, model, tuned or not, init scheme, recipe (searched,
    pinned: suite/recipe.py) and seed."""
    return (setting_of(run), run.tags["model"], run.tags.get("tuned") == "true", run.tags.get("init", ""),
            run.tags.get("recipe", "pinned"), int(run.tags["seed"]))


CELL_KEYS = (TAG, "task", "seq_len", "variant", "model", "tuned", "init", "recipe", "seed")  # what cell_key reads


def counted(cells) -> dict:
    """cell_key -> the run a leaderboard counts for it: the newest finished one, else the newest (failed or
    stopped). `cells` oldest first."""
    latest = {}
    for run in cells:
        key = cell_key(run)
        if run.status == "FINISHED" or latest.get(key, run).status != "FINISHED":
            latest[key] = run
    return latest


def later_failures(cells) -> dict:
    """cell_key -> the cell's newest run where it failed or was stopped after an earlier run of the cell finished:
    the finished one still counts (counted), and the pages say the newer attempt happened. `cells` oldest first."""
    newest, shown = {cell_key(run): run for run in cells}, counted(cells)
    return {key: run for key, run in newest.items()
            if run.status in ("FAILED", "KILLED") and shown[key].status == "FINISHED" and shown[key] is not run}


def read_runs(client, uri: str, experiment_id: str) -> list[Run]:
    """The experiment's active runs that count, oldest first: every run but the benchmark cells superseded by a
    newer run of the same cell, but a failure after a finished one (later_failures); suite/lookup.py reads a few
    tags of each run first, then the runs kept, whole."""
    from suite.lookup import briefs, whole
    from suite.patience import patiently

    found = patiently(client, briefs, client, uri, [experiment_id], CELL_KEYS)  # a database's own queries
    cells = [b for b in found if b.tags.get(TAG) == Role.CELL]
    keep = {b.id for b in (*counted(cells).values(), *later_failures(cells).values())}
    keep |= {b.id for b in found if b.tags.get(TAG) != Role.CELL}
    runs = [Run(r.info.run_id, r.info.experiment_id, r.info.status, r.info.start_time or 0, r.info.run_name or "",
                dict(r.data.tags), dict(r.data.params), dict(r.data.metrics))
            for r in whole(client, [b for b in found if b.id in keep]).values()]
    return sorted(runs, key=lambda r: (r.start, r.id))


def registered(client) -> dict[str, dict]:
    """run id -> its model version in the registry (`rnnbench register`): name, version, champion or not."""
    from mlflow.exceptions import MlflowException

    try:
        models = every(client.search_registered_models, "name LIKE 'rnnbench-%'")
        versions = every(client.search_model_versions, "name LIKE 'rnnbench-%'")
    except MlflowException:  # a store without a registry
        return {}
    champions = {(m.name, str(v)) for m in models for a, v in m.aliases.items() if a == "champion"}
    return {v.run_id: {"name": v.name, "version": v.version, "champion": (v.name, str(v.version)) in champions}
            for v in versions}


def planned_cells(experiments: list) -> set | None:
    """(model, setting, seed) of every cell the experiments' benchmarks planned (their `rnnbench.plan.*` tags),
    as they planned them, whatever today's profiles say; None when no benchmark logged a plan."""
    blocks = [b for e in experiments for b in plan_blocks(e.tags)]
    if not blocks:
        return None
    return {(m, Setting(task, int(T), variant), seed) for b in blocks for m in b["models"] for seed in b["seeds"]
            for task, T, variant in b["settings"]}
