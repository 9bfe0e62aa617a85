"""Reading a store of thousands of runs without reading every run whole.

MLflow's searches load every matching run with all its params, metrics, tags and inputs (~8 ms a run on SQLite),
so a store of 50,000 runs took minutes to search, while the skip check, the claims and the report each want a few
tags of every run and the whole of a few hundred. `briefs` reads those few tags: on a database store (SQLite,
PostgreSQL, MySQL) in one query over MLflow's own `runs` and `tags` tables (their schema is MLflow's oldest and
stable), elsewhere (a tracking server) through the client's search; `whole` then reads the chosen runs in full,
by id.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from suite.stores import every

DATABASES = ("sqlite", "postgresql", "mysql", "mssql")
_engines: dict[str, object] = {}


@dataclass(frozen=True)
class Brief:
    """A run as far as `briefs` read it: the asked tags only (and the whole run where the search returned it)."""

    id: str
    experiment_id: str
    status: str
    start: int
    tags: dict
    run: object = field(default=None, compare=False)


def briefs(client, uri: str, experiment_ids: list[str], keys: tuple[str, ...], statuses: tuple[str, ...] = (),
           tag: tuple[str, str] | None = None) -> list[Brief]:
    """The experiments' active runs (with one of `statuses`, and where tag[0] equals tag[1], if given), oldest
    first, each with its `keys` tags."""
    if urlsplit(uri).scheme.split("+")[0] in DATABASES:
        return _from_database(uri, experiment_ids, keys, statuses, tag)
    clauses = ([f"attributes.status = '{statuses[0]}'"] if len(statuses) == 1 else []) + \
        ([f"tags.{tag[0]} = '{tag[1]}'"] if tag else [])  # MLflow's IN takes run ids only: several statuses below
    runs = every(client.search_runs, experiment_ids, " and ".join(clauses))
    found = [Brief(r.info.run_id, r.info.experiment_id, r.info.status, r.info.start_time or 0,
                   {k: r.data.tags[k] for k in keys if k in r.data.tags}, r)
             for r in runs if not statuses or r.info.status in statuses]
    return sorted(found, key=lambda b: (b.start, b.id))


def whole(client, found: list[Brief]) -> dict[str, object]:
    """run id -> the MLflow run, whole, for each brief (read by id, a hundred at a time, where not read yet)."""
    out, wanted = {b.id: b.run for b in found if b.run is not None}, {}
    for b in found:
        if b.run is None:
            wanted.setdefault(b.experiment_id, []).append(b.id)
    for experiment_id, ids in wanted.items():
        for i in range(0, len(ids), 100):
            quoted = ", ".join(f"'{run_id}'" for run_id in ids[i:i + 100])
            for run in every(client.search_runs, [experiment_id], f"attributes.run_id IN ({quoted})"):
                out[run.info.run_id] = run
    return out


def _from_database(uri: str, experiment_ids, keys, statuses, tag) -> list[Brief]:
    import sqlalchemy as sa

    if uri not in _engines:
        _engines[uri] = sa.create_engine(uri, poolclass=sa.pool.NullPool)
    runs = sa.table("runs", *map(sa.column, ("run_uuid", "experiment_id", "status", "start_time", "lifecycle_stage")))
    tags = sa.table("tags", *map(sa.column, ("run_uuid", "key", "value")))
    query = sa.select(runs.c.run_uuid, runs.c.experiment_id, runs.c.status, runs.c.start_time, tags.c.key,
                      tags.c.value).select_from(runs.outerjoin(
                          tags, sa.and_(tags.c.run_uuid == runs.c.run_uuid, tags.c.key.in_(keys)))).where(
        runs.c.experiment_id.in_([int(e) for e in experiment_ids]), runs.c.lifecycle_stage == "active")
    if statuses:
        query = query.where(runs.c.status.in_(statuses))
    if tag:
        query = query.where(runs.c.run_uuid.in_(sa.select(tags.c.run_uuid).where(tags.c.key == tag[0],
                                                                                   tags.c.value == tag[1])))
    found: dict[str, tuple] = {}
    with _engines[uri].connect() as conn:
        for run_id, experiment, status, start, key, value in conn.execute(query):
            held = found.setdefault(run_id, (str(experiment), status, start or 0, {}))[3]
            if key is not None:
                held[key] = value
    briefs = [Brief(run_id, e, status, start, held) for run_id, (e, status, start, held) in found.items()]
    return sorted(briefs, key=lambda b: (b.start, b.id))
