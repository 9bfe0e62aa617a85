"""Each model at its own recipe: the search's grid, rungs and choice, what it records, the verdict at each budget,
the learning-rate windows and the robustness sentence; and the one shared learning rate still answerable."""
import json
import math
import re

import pytest
from mlflow import MlflowClient

from suite import recipe
from suite.cli import main
from suite.experiment import load_experiment
from suite.overall import Contender, Overall
from suite.recipe import Found, RecipeConfig
from suite.robustness import Budget, at_share, drop, robust_share, sentence, settled
from suite.runs import Run, Setting
from suite.search import phases

ADDING = Setting("adding", 10)
TINY = ["--profile", "smoke", "--models", "lstm,gru", "--tasks", "adding", "--seeds", "3", "--set", "task.seq_len=10",
        "--set", "train.epochs=4", "--set", "train.steps_per_epoch=6", "--set", "recipe.pinned=false"]


def runs(uri, experiment):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], max_results=1000) if exp else []


def test_the_default_recipe_searches_4_learning_rates_over_33x_and_a_set_pins_it():
    exp = load_experiment("cpu", announce=None)
    points = recipe.grid(exp.recipe, "lstm")
    lrs = [p["train.lr"] for p in points]
    assert len(lrs) >= 4 and max(lrs) / min(lrs) >= 30 and exp.recipe.seed not in {c.seed for c in exp.cells}
    searches = recipe.plan(exp.cells, exp.recipe)
    assert len(searches) == len({(c.model, c.task) for c in exp.cells})  # one a model and setting, not a seed
    pinned = load_experiment("cpu", sets=["train.lr=0.003"], announce=None)
    assert recipe.plan(pinned.cells, pinned.recipe) == {} and {c.train.lr for c in pinned.cells} == {0.003}
    assert load_experiment("smoke", announce=None).recipe.pinned


def test_a_search_runs_its_rungs_on_its_own_seed_and_names_the_scored_cells():
    exp = load_experiment("cpu", models=["lstm"], tasks=["adding"], announce=None)
    (s,) = recipe.plan(exp.cells, exp.recipe).values()
    assert [s.epochs(0), s.epochs(1)] == [2, 4]  # 1/4 and 1/2 of 8 epochs
    first = s.cell(s.points[0], 0)
    assert first.seed == 1000 and first.train.epochs == 2 and first.train.lr == 3e-4 and first.train.test_at == []
    scored = s.scored(exp.cells[1], s.points[2])
    assert (scored.seed, scored.train.lr, scored.recipe) == (1, 3e-3, s.id)
    assert scored.tags["recipe"] == "searched" and scored.config_hash != exp.cells[1].config_hash
    assert s.id == recipe.plan(exp.cells, exp.recipe)[exp.cells[0].setting_key].id  # stable
    other = RecipeConfig(search={"train": {"lr": [1e-3, 1e-2]}})
    assert recipe.plan(exp.cells, other)[exp.cells[0].setting_key].id != s.id
    losses = dict(zip(s.points, [0.5, None, 0.1, 0.1], strict=True))  # a failed point ranks last, ties by grid order
    assert s.survivors(losses, 0) == [s.points[2], s.points[3]] and s.survivors(losses, 1) == [s.points[2]]


@pytest.mark.parametrize("sets,expected", [
    (["recipe.seed=0"], "recipe.seed: 0 is a scored seed"),
    (["recipe.search.task.seq_len=[5,10]"], "recipe.search.task: a recipe searches train.* and model.* keys"),
    (["recipe.search.train.epochs=[2,4]"], "recipe.search.train.epochs: the search's rungs set it"),
    (["recipe.search.train.lr=[0.001,0.001]"], "expected a list of distinct values"),
    (["recipe.search.train.lr=[-0.1,0.01]"], "train.lr: Input should be greater than 0"),
    (["recipe.rungs=[0.5,0.25]"], "recipe.rungs: expected rising shares"),
    (["recipe.models.mambo.train.lr=[0.001]"], "recipe.models.mambo: unknown model"),
    (["recipe.keep=2"], "recipe.keep: Input should be less than or equal to 1"),
])
def test_a_bad_recipe_is_one_line_before_anything_runs(tmp_path, monkeypatch, capsys, sets, expected):
    monkeypatch.chdir(tmp_path)
    args = ["benchmark", "--profile", "cpu", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"]
    assert main([*args, *(x for s in sets for x in ("--set", s))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err
    assert list(tmp_path.iterdir()) == []


def _found(model, scores, chosen, points=("a", "b", "c", "d")):
    pts = [json.dumps({"train.lr": lr}) for lr in (3e-4, 1e-3, 3e-3, 1e-2)]
    named = dict(zip(points, pts, strict=True))
    return Found("s", model, ADDING, pts, {named[p]: v for p, v in scores.items()}, {}, named[chosen])


def test_the_window_compares_each_point_at_the_rung_it_reached():
    f = _found("gru", {"a": [0.50], "b": [0.90, 0.95], "c": [0.88, 0.97], "d": [0.20]}, "c")
    assert f.window() == [f.points[1], f.points[2]]  # b at 1/2 is 0.02 below c; a at 1/4 is 0.40 below c's 0.90
    assert f.width() == pytest.approx(3.0)
    assert robust_share([f]) == {"gru": 0.5} and drop([f], "gru") == pytest.approx(0.02)
    assert not f.at_edge() and _found("gru", {"a": [0.5], "d": [0.9]}, "d").at_edge()  # the best may lie beyond
    flat = _found("lstm", {"a": [0.99], "b": [1.0, 1.0], "c": [1.0, 1.0], "d": [0.97]}, "b")
    assert len(flat.window()) == 4 and flat.width() == pytest.approx(1e-2 / 3e-4)


def _overall(*scores):
    """An Overall whose contenders are (label, iqm, ci low, ci high)."""
    contenders = [Contender(name, name, None, iqm=iqm, iqm_ci=(lo, hi), lr=["0.003"]) for name, iqm, lo, hi in scores]
    return Overall([ADDING] * 5, 3, contenders)


def _budget(share, *scores):
    from suite.overall import leaders

    o = _overall(*scores)
    return Budget(share, o, leaders(o))


def test_the_sentence_says_what_holds_and_what_flips():
    gru_ahead = [("gru", 0.9, 0.85, 0.95), ("lstm", 0.6, 0.5, 0.7)]
    steady = [_budget(0.25, *gru_ahead), _budget(0.5, *gru_ahead), _budget(1.0, *gru_ahead)]
    assert settled(steady)
    wide = [_found("gru", {"a": [0.8], "b": [0.88, 0.9], "c": [0.9, 0.92], "d": [0.5]}, "c")]
    text = sentence(steady, "searched", wide)
    assert text.startswith("gru leads at each model's own learning rate, at ½ and at the full budget; within its "
                           "learning-rate window every recipe keeps the lead")
    moving = [steady[0], _budget(0.5, ("lstm", 0.7, 0.6, 0.8), ("gru", 0.5, 0.4, 0.55)), steady[2]]
    assert not settled(moving)
    assert "not settled at this budget: at ½ of it, lstm" in sentence(moving, "searched", wide)
    close = [_budget(s, ("gru", 0.9, 0.85, 0.95), ("lstm", 0.88, 0.86, 0.9)) for s in (0.25, 0.5, 1.0)]
    assert sentence(close, "searched", []) .startswith("gru leads at each model's own learning rate but cannot be "
                                                       "told from lstm")
    narrow = [_found("gru", {"a": [0.2], "b": [0.87, 0.86], "c": [0.9, 0.9], "d": [0.1]}, "c")]
    shared = _budget(1.0, ("lstm", 0.8, 0.7, 0.85), ("gru", 0.5, 0.4, 0.6))
    text = sentence([_budget(s, ("gru", 0.9, 0.85, 0.95), ("lstm", 0.87, 0.8, 0.84)) for s in (0.25, 0.5, 1.0)],
                    "searched", narrow, shared)
    assert "the lead hangs on the recipe" in text and "at one shared learning rate (0.003) lstm leads instead" in text
    assert sentence(steady, "pinned", []).startswith("gru leads at one shared learning rate (0.003)")


def test_the_verdict_at_a_budget_reads_each_runs_test_at_that_share():
    run = Run("r", "e", "FINISHED", 0, "", {}, {}, {"test_loss": 0.1, "chance_loss": 1.0, "test_acc": 0.9, "solved": 1.0,
                                                 "test_loss_at_0.25": 0.8, "test_acc_at_0.25": 0.2})
    early = Run("s", "e", "FINISHED", 0, "", {}, {}, {"test_loss": 0.0, "chance_loss": 1.0})  # stopped early, solved
    (quarter, kept) = at_share([run, early], 0.25)
    assert quarter.metrics["test_loss"] == 0.8 and quarter.metrics["test_vs_chance"] == 0.8
    assert quarter.metrics["test_acc"] == 0.2 and "solved" not in quarter.metrics
    assert kept.metrics == early.metrics and at_share([run], 1.0)[0] is run


def test_the_dry_run_lays_out_the_rungs_then_the_scored_cells():
    exp = load_experiment("cpu", models=["lstm", "gru"], tasks=["adding"], announce=None)
    laid = phases(exp.cells, exp.recipe, {})
    assert [len(p) for p in laid] == [8, 4, 6]  # 2 models x 4 points, the best 2 each, 2 models x 3 seeds
    assert [p.share for p in laid[1]] == [0.5] * 4  # a rung carries on from the one before: half its epochs left
    assert not any(p.known for p in laid[1]) and not any(p.known for p in laid[2])
    assert all(p.known for p in laid[0]) and laid[0][0].name.endswith("lr 0.0003")


def test_a_benchmark_searches_each_models_recipe_then_scores_its_seeds_there(in_store, capsys):
    args = ["benchmark", *TINY, "--tracking-uri", in_store, "--experiment", "t-recipe"]
    assert main(args) == 0
    out = capsys.readouterr().out
    found = runs(in_store, "t-recipe")
    searched = [r for r in found if r.data.tags["rnnbench_role"] == "recipe"]
    scored = [r for r in found if r.data.tags["rnnbench_role"] == "cell"]
    assert len(searched) == 2 * (4 + 2) and len(scored) == 6
    first = [r for r in searched if r.data.tags["recipe_rung"] == "0"]
    second = [r for r in searched if r.data.tags["recipe_rung"] == "1"]
    assert {r.data.tags["seed"] for r in searched} == {"1000"} and not any("test_loss" in r.data.metrics for r in searched)
    assert {r.data.tags["recipe"] for r in searched} == {"candidate"} and not any(r.outputs.model_outputs for r in searched)
    assert all(r.data.params["train.epochs"] == "1" for r in first) and all(r.data.params["train.epochs"] == "2" for r in second)
    ids = {r.info.run_id for r in first}
    assert all(r.data.tags["continued_from"] in ids for r in second)  # the rung before's checkpoint, carried on
    assert all(MlflowClient(in_store).get_metric_history(r.info.run_id, "val_loss")[0].step == 1 for r in second)
    for r in scored:
        assert r.data.tags["recipe"] == "searched" and r.data.tags["recipe_search"]
        chosen = json.loads(r.data.tags["recipe_point"])
        assert float(r.data.params["train.lr"]) == chosen["train.lr"]
        mine = [s for s in second if s.data.tags["model"] == r.data.tags["model"]]
        best = min(mine, key=lambda s: s.data.metrics["val_loss"])
        assert json.loads(best.data.tags["recipe_point"]) == chosen  # the best at the last rung
        assert {"test_loss_at_0.25", "test_loss_at_0.5"} <= set(r.data.metrics)
    assert "recipe search, rung 2/2" in out and "each model at its own recipe" in out
    assert "at each model's own learning rate" in out and "Learning-rate windows" in out and "lr (per setting)" in out
    assert "The verdict at each share of the budget" in out and "recipe search: " in out

    assert main(args) == 0  # again: the search's runs and the scored cells are all finished
    out = capsys.readouterr().out
    assert len(runs(in_store, "t-recipe")) == len(found) and "6 skipped" in out

    shared = ["benchmark", *TINY, "--set", "train.lr=0.003", "--tracking-uri", in_store, "--experiment", "t-recipe"]
    assert main(shared) == 0  # the old question: one shared learning rate, beside the own-lr runs
    out = capsys.readouterr().out
    assert "one shared learning rate (0.003)" in out
    pinned = [r for r in runs(in_store, "t-recipe") if r.data.tags.get("recipe") == "pinned"]  # cells only
    assert len(pinned) == 6 and all(r.data.params["train.lr"] == "0.003" for r in pinned)

    assert main(["report", "--experiment", "t-recipe", "--tracking-uri", in_store, "--out", "site-recipe"]) == 0
    result = json.loads(open("site-recipe/results.json").read())
    assert "at each model's own learning rate" in result["robustness"] and result["shared_lr"]["rows"]
    assert [b["share"] for b in result["budgets"]] == [0.25, 0.5, 1.0] and isinstance(result["settled"], bool)
    assert {s["model"] for s in result["recipes"]["searches"]} == {"lstm", "gru"}
    assert all(math.isclose(s, 1) or 0 < s < 1 for s in result["recipes"]["robust_share"].values())
    page = open("site-recipe/index.html").read()
    assert 'id="robustness"' in page and "lr-adding-t-10.svg" in page and "The same at one shared learning rate" in page
    assert "(own lr)" in page and "(shared lr)" in page
    summary = open("site-recipe/summary.md").read()
    assert result["robustness"] in summary and "Learning-rate windows" in summary


def test_the_dry_run_prices_the_search_phase_by_phase_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["benchmark", *TINY, "--tracking-uri", f"sqlite:///{tmp_path}/m.db", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "lstm · adding T=10 · lr 0.0003" in out and "a point the rung before keeps" in out
    assert "(at the point the search picks)" in out and "18 runs: 0 finished, 18 to train" in out
    assert re.search(r"phases, each packed on its own: recipe rung 1 \S+ \(8 runs\), recipe rung 2 \S+ \(4 runs\), "
                     r"scored \S+ \(6 runs\); the recipe search \d\.\d\dx the scored cells", out), out
    assert list(tmp_path.iterdir()) == []
