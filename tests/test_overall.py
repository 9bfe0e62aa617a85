"""The answer across settings, on stores whose truth is known (runs written through MLflow's client, no training):
the better model ranks first with its interval clear of the others', identical models share a group, a model at
chance is never a choice however cheap, a missing setting is reported rather than averaged away, seeds that fall
apart are shown as such; and the section renders at desktop and phone width with every figure."""
import json
import shutil

import numpy as np
import pytest
from mlflow import MlflowClient

from suite.cli import main
from tests.test_report import LAYOUT, browse

LENGTHS = (10, 20, 30, 40, 50, 60)  # six settings: enough for Friedman's test and the critical difference


def write(client, experiment_id, model, T, seed, ratio, seconds=10.0, solved=None, status="FINISHED", tags=None,
          lr=0.001, **more):
    """One finished cell of adding at length T whose test loss is `ratio` of the chance loss (more metrics: `more`)."""
    from mlflow.entities import Metric, Param

    chance = 1 / 6
    run = client.create_run(experiment_id, tags={"rnnbench_role": "cell", "model": model, "task": "adding",
                                                 "seq_len": str(T), "seed": str(seed), "profile": "test",
                                                 "data_source": "synthetic", "init": "torch", **(tags or {})})
    metrics = {"test_loss": ratio * chance, "test_mse": ratio * chance, "chance_loss": chance, "test_vs_chance": ratio,
               "n_params": 1000.0, "train_samples_per_s": 1000.0 / seconds, "epoch_time_s": seconds / 2,
               "epochs_trained": 2.0, "peak_mem_mb": 500.0, **more}
    if solved is not None:
        metrics["solved"] = float(solved)
    client.log_batch(run.info.run_id, metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()],
                     params=[Param("train.lr", str(lr))])
    client.set_terminated(run.info.run_id, status)


def search(client, experiment_id, model, T, losses):
    """A recipe search's runs on adding T: `losses` maps each lr to its validation loss by rung (in chance units)."""
    from mlflow.entities import Metric

    for lr, by_rung in losses.items():
        for rung, loss in enumerate(by_rung):
            run = client.create_run(experiment_id, tags={
                "rnnbench_role": "recipe", "recipe": "candidate", "recipe_search": f"{model}-{T}", "recipe_rung": str(rung),
                "recipe_point": json.dumps({"train.lr": lr}), "model": model, "task": "adding", "seq_len": str(T),
                "seed": "1000"})
            client.log_batch(run.info.run_id, metrics=[Metric("val_loss", loss / 6, 0, 0),
                                                      Metric("chance_loss", 1 / 6, 0, 0)])
            client.set_terminated(run.info.run_id, "FINISHED")


def report(store, name, tmp_path, fill):
    root, uri = store
    client = MlflowClient(uri)
    experiment = client.create_experiment(name)
    fill(client, experiment)
    out = tmp_path / "site"
    assert main(["report", "--tracking-uri", uri, "--experiment", name, "--out", str(out), "--mlflow-ui", ""]) == 0
    return out, json.loads((out / "results.json").read_text())


def test_the_better_model_ranks_first_and_its_interval_is_clear_of_the_others(store, tmp_path):
    rng = np.random.RandomState(0)

    def fill(client, experiment):
        for T in LENGTHS:
            for seed in range(3):
                write(client, experiment, "gru", T, seed, 0.10 + 0.02 * rng.rand())  # score ~0.89 everywhere
                write(client, experiment, "lstm", T, seed, 0.50 + 0.02 * rng.rand())
                write(client, experiment, "rnn", T, seed, 0.60 + 0.02 * rng.rand())

    out, result = report(store, "t-overall-clear", tmp_path, fill)
    models = result["models"]
    assert list(models) == ["gru", "lstm", "rnn"] and result["population"]["settings"] == [
        f"adding T={T}" for T in LENGTHS] and result["population"]["seeds"] == 3
    gru, lstm = models["gru"], models["lstm"]
    assert gru["iqm_ci95"][0] > max(lstm["iqm_ci95"][1], models["rnn"]["iqm_ci95"][1])
    assert gru["mean_rank"] == 1.0 and gru["cd_group"] == "top" and models["rnn"]["cd_group"] == "below"
    assert result["ranks"]["test"] == "Friedman + Nemenyi" and result["ranks"]["pvalue"] < 0.05
    assert "its interval lies above every other model's" in result["headline"]
    poi = {(p["x"], p["y"]): p for p in result["improvement"]}
    assert poi[("gru", "lstm")]["p"] == 1.0 and poi[("lstm", "gru")]["p"] == 0.0
    index = (out / "index.html").read_text()
    assert index.index('id="overall"') < index.index('id="what"')  # the answer comes first
    assert (out / "summary.md").read_text().split("\n## ")[1].startswith("Overall")
    for name in ("overall-scores", "overall-profile", "overall-frontier", "overall-cd"):
        assert f"plots/{name}.svg" in index and (out / "plots" / f"{name}.svg").is_file(), name


def test_identical_models_overlap_and_share_the_top_group(store, tmp_path):
    def fill(client, experiment):
        rng = np.random.RandomState(1)
        for T in LENGTHS:
            for seed in range(3):
                value = 0.3 + 0.1 * rng.rand()
                write(client, experiment, "gru", T, seed, value)
                write(client, experiment, "lstm", T, seed, value)  # the same scores, seed for seed
                write(client, experiment, "rnn", T, seed, 0.9 + 0.05 * rng.rand())

    _, result = report(store, "t-overall-tie", tmp_path, fill)
    gru, lstm = result["models"]["gru"], result["models"]["lstm"]
    assert gru["iqm"] == lstm["iqm"] and gru["iqm_ci95"][0] <= lstm["iqm_ci95"][1]
    assert gru["cd_group"] == lstm["cd_group"] == "top" and result["models"]["rnn"]["cd_group"] == "below"
    assert "cannot be told from" in result["headline"]


def test_a_cheap_model_at_chance_is_never_a_choice_and_a_missing_setting_is_reported(store, tmp_path):
    def fill(client, experiment):
        rng = np.random.RandomState(2)
        for T in LENGTHS[:3]:
            for seed in range(3):
                write(client, experiment, "rnn", T, seed, 1.0 + 0.01 * rng.rand(), seconds=0.1)  # cheap, at chance
                write(client, experiment, "gru", T, seed, 0.2 + 0.02 * rng.rand(), seconds=50.0, solved=True)
                if T != LENGTHS[2]:  # lstm never ran the third setting
                    write(client, experiment, "lstm", T, seed, 0.3 + 0.02 * rng.rand(), seconds=30.0)

    out, result = report(store, "t-overall-chance", tmp_path, fill)
    assert result["population"]["incomplete"] == {"lstm": [f"adding T={LENGTHS[2]}"]}
    assert set(result["models"]) == {"rnn", "gru"}  # lstm is listed with what it lacks, not averaged over fewer
    assert result["models"]["rnn"]["score_mean"] == 0.0
    index = (out / "index.html").read_text()
    assert f"lstm is not in the table: it lacks adding T={LENGTHS[2]}" in index
    choose = index[index.index('id="choose"'):index.index('id="what"')]
    assert "rnn" not in choose.replace("rnnbench", "") and "gru" in choose


def test_when_every_model_fails_no_model_is_named_and_a_newer_failure_is_counted(store, tmp_path):
    import time

    def fill(client, experiment):
        for T in LENGTHS[:2]:
            for seed in range(3):
                for model in ("gru", "lstm"):
                    write(client, experiment, model, T, seed, float("nan"), status="FAILED")  # lr 1e30: NaN
        write(client, experiment, "rnn", LENGTHS[0], 0, 0.5)
        time.sleep(0.01)
        write(client, experiment, "rnn", LENGTHS[0], 0, float("nan"), status="FAILED")  # its newest attempt

    out, result = report(store, "t-overall-all-failed", tmp_path, fill)
    assert result["headline"].startswith("No overall verdict: every model scored 0 on every setting")
    for page in ("index.html", "summary.md"):
        assert "highest interquartile mean" not in (out / page).read_text()
    (rnn,) = [r for r in result["boards"][0]["rows"] if r["model"] == "rnn"]
    assert rnn["seeds"] == [0] and rnn["failed_after_finishing"] == [0]
    assert "13 failed or stopped" in (out / "index.html").read_text()  # 12 failed cells and rnn's newer attempt
    assert "FAILED after an earlier run finished (shown)" in (out / "summary.md").read_text()


def test_seeds_that_fall_apart_are_shown_as_such(store, tmp_path):
    def fill(client, experiment):
        for T in LENGTHS[:2]:
            for seed, ratio in enumerate((0.01, 0.02, 1.0)):  # two seeds solve it, one stays at chance
                write(client, experiment, "gru", T, seed, ratio, solved=ratio < 0.5)
                write(client, experiment, "lstm", T, seed, 0.5, solved=False)

    out, result = report(store, "t-overall-bimodal", tmp_path, fill)
    assert result["models"]["gru"]["bimodal"] == [f"adding T={T}" for T in LENGTHS[:2]]
    assert sorted(result["models"]["gru"]["scores"]) == pytest.approx([0, 0, 0.98, 0.98, 0.99, 0.99])
    assert result["boards"][0]["rows"][-1]["bimodal"] is True  # gru, after lstm in the registry's order
    assert "Seeds that fall apart" in (out / "index.html").read_text()


@pytest.mark.parametrize("width,mobile", [(1400, False), (390, True)], ids=["desktop", "phone"])
def test_the_overall_section_lays_out_at_desktop_and_phone_width(store, tmp_path, width, mobile):
    import os

    if not shutil.which("chromium"):
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI (.ci/run installs it)")
        pytest.skip("chromium not installed (apt-get install chromium); CI runs this test")

    def fill(client, experiment):  # each model at its own lr (a search each) and at one shared lr
        rng = np.random.RandomState(3)
        for T in LENGTHS:
            for i, model in enumerate(("rnn", "lstm", "gru", "attn_rnn")):
                search(client, experiment, model, T, {3e-4: [0.9], 1e-3: [0.5, 0.4], 3e-3: [0.45, 0.35], 1e-2: [0.8]})
                point = {"recipe": "searched", "recipe_search": f"{model}-{T}", "recipe_point": '{"train.lr": 0.003}'}
                for seed in range(3):
                    ratio = 0.2 + 0.15 * i + 0.05 * rng.rand()
                    write(client, experiment, model, T, seed, ratio, seconds=5 + 10 * i, tags=point, lr=0.003,
                          **{"test_loss_at_0.25": (ratio + 0.3) / 6, "test_loss_at_0.5": (ratio + 0.1) / 6})
                    write(client, experiment, model, T, seed, min(ratio + 0.2, 1.0), seconds=5 + 10 * i,
                          tags={"recipe": "pinned"}, lr=0.003)

    out, _ = report(store, f"t-overall-layout-{width}", tmp_path, fill)
    expression = LAYOUT.replace("return JSON.stringify({problems, broken, banners});",
                                "const svgs = [...document.querySelectorAll('#overall img')].map(i => i.src);"
                                "return JSON.stringify({problems, broken, banners, svgs});")
    errors, _, found = browse((out / "index.html").resolve().as_uri(), width, 900, mobile=mobile, expression=expression)
    found = json.loads(found)
    assert errors == [] and found["problems"] == [] and found["broken"] == [], found
    assert {s.rsplit("/", 1)[1] for s in found["svgs"]} == {"overall-scores.svg", "overall-profile.svg",
                                                            "overall-frontier.svg", "overall-cd.svg",
                                                            *(f"lr-adding-t-{T}.svg" for T in LENGTHS)}
    page = (out / "index.html").read_text()
    assert 'id="robustness"' in page and 'id="budgets"' in page and 'id="recipes"' in page and 'id="shared-lr"' in page


def test_a_profiles_banner_comes_before_any_number():
    from suite.console import overall_block
    from suite.experiment import load_experiment, profile_banner

    assert profile_banner("smoke").startswith("Smoke profile") and profile_banner("full") == ""
    assert load_experiment("cpu", announce=None).banner.startswith("cpu profile: a small CPU budget")
    block = overall_block([], profile_banner("smoke")).splitlines()
    assert block[1:3] == ["Overall", f"** {profile_banner('smoke')} **"]


def test_the_interquartile_mean_is_rliables_bit_for_bit():
    import numpy as np
    from rliable import metrics

    from suite.uncertainty import iqm

    rng = np.random.RandomState(0)
    for shape in [(1, 1), (2, 3), (3, 4), (3, 15), (10, 20), (301, 16)]:
        x = rng.rand(*shape).round(rng.randint(1, 4))  # ties too
        assert iqm(x) == metrics.aggregate_iqm(x)
