"""Run lifecycles: whatever raises inside, a run ends FINISHED, FAILED or KILLED, never RUNNING; and plans."""
import json

import pytest

from suite.tracking import connect, log_plan, open_run, plan_blocks


@pytest.fixture
def store(in_store, request):
    return connect(in_store, f"t-life-{request.node.name}"[:200])


def statuses(store):
    return {r.info.run_name: (r.info.status, r.data.tags.get("error"))
            for r in store.client.search_runs([store.experiment_id])}


@pytest.mark.parametrize("heartbeat", [True, False], ids=["with-heartbeat", "without"])
def test_every_way_out_ends_the_run(store, heartbeat):
    def opener(store, name, tags):
        return open_run(store, name, tags, heartbeat=heartbeat)

    with opener(store, "fine", {}):
        pass
    with pytest.raises(ValueError):
        with opener(store, "plot-error", {}):
            raise ValueError("the plot failed")
    with pytest.raises(KeyboardInterrupt):
        with opener(store, "ctrl-c", {}):
            raise KeyboardInterrupt
    assert statuses(store) == {"fine": ("FINISHED", None), "plot-error": ("FAILED", "ValueError: the plot failed"),
                               "ctrl-c": ("KILLED", None)}


def test_lightnings_system_exit_is_an_interrupt_and_a_withdrawn_run_leaves_no_trace(store):
    with pytest.raises(KeyboardInterrupt):
        with open_run(store, "system-exit", {}):
            raise SystemExit(1)  # what Lightning turns Ctrl-C into
    with open_run(store, "withdrawn", {}) as run:
        run.withdraw()
    with open_run(store, "duplicate", {}) as run:
        run.end_as("KILLED", duplicate="finished meanwhile")
    assert statuses(store) == {"system-exit": ("KILLED", None), "duplicate": ("KILLED", None)}


def test_plans_accumulate_on_the_experiment(store):
    from suite.experiment import load_experiment

    exp = load_experiment("smoke", models=["lstm"], tasks=["adding"], seeds=range(2), announce=None)
    log_plan(store, exp.matrix, exp.cells)
    log_plan(store, exp.matrix, exp.cells)  # the same plan again adds nothing
    blocks = plan_blocks(store.client.get_experiment(store.experiment_id).tags)
    planned = [{"models": ["rnn", "lstm", "gru", "attn_rnn"], "seeds": [0],
                "settings": [["mnist_rows", 28, ""], ["mnist_pixels", 784, ""], ["copy", 20, ""], ["adding", 20, ""]]},
               {"models": ["lstm"], "seeds": [0, 1], "settings": [["adding", 20, ""]]}]
    assert sorted(blocks, key=json.dumps) == sorted(planned, key=json.dumps)


def test_jobs_planning_at_once_keep_every_plan_and_a_clash_on_a_new_tag_is_no_error(store, monkeypatch):
    """Two jobs read the plan before either writes: each matrix has its own tag, so neither is lost; and the
    server refusing the second insert of a tag another job just set (a unique-key clash) is no error."""
    from suite.experiment import load_experiment

    exp = load_experiment("smoke", models=["lstm"], tasks=["adding"], seeds=range(2), announce=None)
    other = load_experiment("smoke", models=["gru"], tasks=["copy"], seeds=range(1), announce=None)
    client = store.client
    stale = client.get_experiment(store.experiment_id)  # what both jobs read before writing
    monkeypatch.setattr(client, "get_experiment", lambda eid: stale, raising=False)
    log_plan(store, exp.cells)
    log_plan(store, other.cells)
    monkeypatch.undo()
    assert len(plan_blocks(client.get_experiment(store.experiment_id).tags)) == 2

    real = client.set_experiment_tag

    def clash(eid, key, value):  # the other job inserted this very tag a moment before us
        real(eid, key, value)
        raise RuntimeError("UniqueViolation: duplicate key value violates unique constraint experiment_tag_pk")

    monkeypatch.setattr(client, "set_experiment_tag", clash)
    third = load_experiment("smoke", models=["rnn"], tasks=["adding"], seeds=range(1), announce=None)
    log_plan(store, third.cells)
    assert len(plan_blocks(client.get_experiment(store.experiment_id).tags)) == 3

    def refuse(eid, key, value):  # a refusal of another kind, and the tag is not there
        raise RuntimeError("refused")

    monkeypatch.setattr(client, "set_experiment_tag", refuse)
    with pytest.raises(RuntimeError, match="refused"):
        log_plan(store, load_experiment("smoke", models=["rnn"], tasks=["copy"], seeds=range(1), announce=None).cells)


def test_a_sqlite_store_waits_out_a_locked_database_and_nothing_else(monkeypatch):
    from suite.patience import StoreClient

    monkeypatch.setattr(StoreClient, "WAITS", (0, 0, 0))
    calls = []

    class Flaky:
        uri = "sqlite:///x.db"

        def log_batch(self, run_id, fail_times, message="(sqlite3.OperationalError) database is locked"):
            calls.append(run_id)
            if len(calls) <= fail_times:
                raise RuntimeError(message)
            return "logged"

    client = StoreClient(Flaky(), sqlite=True)
    assert client.uri == "sqlite:///x.db"
    assert client.log_batch("r", fail_times=2) == "logged" and len(calls) == 3  # two refusals, then in
    calls.clear()
    with pytest.raises(RuntimeError, match="no such table"):  # any other error goes up at once
        client.log_batch("r", fail_times=1, message="no such table: runs")
    assert len(calls) == 1
    calls.clear()
    with pytest.raises(RuntimeError, match="locked"):  # locked for good: after the waits, the error goes up
        client.log_batch("r", fail_times=99)
    assert len(calls) == 4


def test_packed_jobs_on_sqlite_get_the_patient_client(tmp_path, monkeypatch):
    from suite.patience import StoreClient

    monkeypatch.chdir(tmp_path)
    store = connect(f"sqlite:///{tmp_path}/mlflow.db", "t-patient")
    assert isinstance(store.client, StoreClient) and store.client._sqlite
    run = store.client.create_run(store.experiment_id).info.run_id
    store.client.log_batch(run, metrics=[])
    assert store.client.get_run(run).info.status == "RUNNING"


def test_jobs_describing_one_experiment_together_do_not_clash():
    from types import SimpleNamespace

    from suite.tracking import UI_VIEW, describe

    class Raced:  # another job set the tags between our read and our write: the server refuses the duplicate key
        tags = {}

        def set_experiment_tag(self, experiment_id, key, value):
            self.tags[key] = value
            raise RuntimeError('duplicate key value violates unique constraint "experiment_tag_pk"')

        def get_experiment(self, experiment_id):
            return SimpleNamespace(tags=self.tags)

    describe(Raced(), "1", "rnnbench-tune-x")  # no error: the tags are there
    assert Raced.tags[UI_VIEW] == "custom_model_development"

    class Broken(Raced):
        tags = {}

        def set_experiment_tag(self, experiment_id, key, value):
            raise RuntimeError("permission denied")

    with pytest.raises(RuntimeError, match="permission denied"):
        describe(Broken(), "1", "rnnbench-tune-x")


def test_an_interrupt_waits_for_the_store_call_under_way_then_stops_us(monkeypatch):
    import threading

    from suite import signals as errors
    from suite.patience import StoreClient

    monkeypatch.setattr(errors, "_STOPPING", [])
    written = []

    class Slow:
        def log_batch(self, run_id):
            errors.interrupt()  # SIGTERM (or Ctrl-C) arrives in the middle of the write
            written.append(run_id)  # ... which still completes: no transaction is left open

    client = StoreClient(Slow(), sqlite=False)
    with pytest.raises(KeyboardInterrupt):  # and then we stop
        client.log_batch("r1")
    assert written == ["r1"]
    with pytest.raises(KeyboardInterrupt):  # outside a store call an interrupt is raised at once, as before
        errors.interrupt()
    monkeypatch.setattr(errors, "_STOPPING", [])
    thread = threading.Thread(target=lambda: written.append(StoreClient(type("C", (), {
        "get_run": lambda self, r: r})(), sqlite=False).get_run("r2")))
    thread.start()
    thread.join()  # a heartbeat thread's calls pass straight through
    assert written == ["r1", "r2"]
