"""Every listing of runs, experiments or model versions is read to its last page: with two results per page, the
skip check, the claims, the reaping of stale runs, the experiments a report finds and the registry all see
everything (no listing stops at a cap without saying so)."""
import socket

import pytest

import suite.stores
from suite.cluster import claim, reap_stale_runs
from suite.roles import TAG, Role
from suite.runs import find_experiments, read_runs, registered
from suite.tracking import connect, finished_runs, our_experiments, stopped_runs


@pytest.fixture
def paged(in_store, monkeypatch, request):
    monkeypatch.setattr(suite.stores, "PAGE", 2)
    return connect(in_store, f"t-pages-{request.node.name}"[:200])


def cell(store, i, status, **tags):
    seed = str(len(store.client.search_runs([store.experiment_id])))  # a cell of its own for the report
    run = store.client.create_run(store.experiment_id, tags={
        TAG: Role.CELL, "config_hash": f"h{i % 3}", "code_fingerprint": "fp", "model": "rnn", "task": "copy",
        "seq_len": "5", "seed": seed, **tags})
    if status != "RUNNING":
        store.client.set_terminated(run.info.run_id, status)
    return run.info.run_id


def test_the_skip_check_and_the_resume_check_read_every_page(paged):
    done = [cell(paged, i, "FINISHED") for i in range(7)]
    killed = [cell(paged, i, "KILLED", checkpoint_epoch="2") for i in range(5)]
    found = finished_runs(paged)
    assert {k[0] for k in found} == {"h0", "h1", "h2"} and found[("h0", "fp")].info.run_id == done[6]  # the newest
    assert len(finished_runs(paged, ["h1"])) == 1 and stopped_runs(paged)[("h1", "fp")].info.run_id == killed[4]
    assert len(read_runs(paged.client, paged.uri, paged.experiment_id)) == 12


def test_claims_and_stale_runs_see_every_page(paged):
    dead = f"{socket.gethostname()}:999999:1"  # a worker on this host whose process is gone
    stale = [cell(paged, 0, "RUNNING", **{"rnnbench.worker": dead}) for _ in range(5)]
    assert {r.info.run_id for r in reap_stale_runs(paged.client, [paged.experiment_id], say=lambda _: None)} == \
        set(stale)
    mine = cell(paged, 0, "RUNNING")
    for _ in range(3):
        cell(paged, 3, "KILLED")  # same hash (h0), not running: no claim on the cell
    winner = cell(paged, 0, "FINISHED")  # on the last page
    assert claim(paged, mine, "h0", "fp") == f"finished meanwhile in run {winner}"


def test_experiments_and_registered_versions_are_listed_whole(paged, in_store):
    client = paged.client
    for i in range(5):
        client.create_experiment(f"rnnbench-pages-extra-{i}")
    assert len(our_experiments(paged)) >= 6
    from suite.errors import UserError

    with pytest.raises(UserError) as missing:
        find_experiments(client, in_store, ["nope"], None)
    assert all(f"rnnbench-pages-extra-{i}" in str(missing.value) for i in range(5))
    runs = [cell(paged, i, "FINISHED") for i in range(5)]
    client.create_registered_model("rnnbench-pages-x")
    for run_id in runs:
        client.create_model_version("rnnbench-pages-x", f"runs:/{run_id}/model", run_id=run_id)
    assert set(runs) <= set(registered(client))


def test_the_few_tags_read_from_the_database_are_what_a_server_search_finds(paged):
    """suite/lookup.py reads a database store in one query, a tracking server through its search: the same runs."""
    from suite.lookup import briefs

    for i, status in enumerate(["FINISHED", "KILLED", "RUNNING", "FINISHED", "FAILED"]):
        cell(paged, i, status)
    for statuses, tag in [((), None), (("FINISHED",), None), (("RUNNING", "FINISHED"), ("config_hash", "h0"))]:
        keys = (TAG, "config_hash", "seed")
        direct = briefs(paged.client, paged.uri, [paged.experiment_id], keys, statuses, tag)
        served = briefs(paged.client, "http://127.0.0.1:9", [paged.experiment_id], keys, statuses, tag)  # its search
        assert [(b.id, b.status, b.tags) for b in direct] == [(b.id, b.status, b.tags) for b in served] != []
