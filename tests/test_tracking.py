"""Run lifecycles: whatever raises inside, a run ends FINISHED, FAILED or KILLED, never RUNNING; and plans."""
import json

import pytest

from suite.tracking import PLAN, cell_run, connect, log_plan, parent_run


@pytest.fixture
def store(in_store, request):
    return connect(in_store, f"t-life-{request.node.name}"[:200])


def statuses(store):
    return {r.info.run_name: (r.info.status, r.data.tags.get("error"))
            for r in store.client.search_runs([store.experiment_id])}


@pytest.mark.parametrize("opener", [cell_run, parent_run], ids=["cell_run", "parent_run"])
def test_every_way_out_ends_the_run(store, opener):
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
        with cell_run(store, "system-exit", {}):
            raise SystemExit(1)  # what Lightning turns Ctrl-C into
    with cell_run(store, "withdrawn", {}) as run:
        run.withdraw()
    with cell_run(store, "duplicate", {}) as run:
        run.end_as("KILLED", duplicate="finished meanwhile")
    assert statuses(store) == {"system-exit": ("KILLED", None), "duplicate": ("KILLED", None)}


def test_plans_accumulate_on_the_experiment(store):
    from suite.experiment import load_experiment

    exp = load_experiment("smoke", models=["lstm"], tasks=["adding"], seeds=range(2), announce=None)
    log_plan(store, exp.matrix, exp.cells)
    log_plan(store, exp.matrix, exp.cells)  # the same plan again adds nothing
    blocks = json.loads(store.client.get_experiment(store.experiment_id).tags[PLAN])
    assert blocks == [{"models": ["rnn", "lstm", "gru", "attn_rnn"], "seeds": [0],
                       "settings": [["mnist_rows", 28, ""], ["mnist_pixels", 784, ""], ["copy", 20, ""], ["adding", 20, ""]]},
                      {"models": ["lstm"], "seeds": [0, 1], "settings": [["adding", 20, ""]]}]
