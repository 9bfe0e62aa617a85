"""The speed harness: every figure finite and positive on a smoke setting, and both paths do the same work."""
import math

import pytest
from mlflow import MlflowClient

from suite.cli import main
from suite.experiment import load_raw, plan
from suite.models.stepped import SteppedRNN
from suite.studies.speed import attach_attn_ratios, measure, same_first_loss, speed_table


@pytest.fixture(scope="module")
def smoke_cells():
    raw, _, source = load_raw("smoke")
    return plan(raw, source)


@pytest.mark.parametrize("task", ["mnist_rows", "copy", "adding"])
def test_raw_loop_and_suite_compute_the_same_loss(smoke_cells, task):
    for cell in (c for c in smoke_cells if c.task == task):
        assert same_first_loss(cell), cell.label


def test_every_row_has_finite_positive_figures(smoke_cells):
    rows = [measure(c, repeats=1, steps=2, warmup=1) for c in smoke_cells if c.task == "adding"]
    attach_attn_ratios(rows)
    for r in rows:
        figures = r.metrics()
        assert {"suite_samples_per_s", "raw_samples_per_s", "suite_vs_raw", "data_share", "activation_mb"} <= set(figures)
        assert all(math.isfinite(v) and v > 0 for v in figures.values()), figures
        assert "fused_vs_stepped" in figures  # rnn/lstm/gru by stepped(), attn_rnn by its unroll and readout
        assert ("attn_vs_base_step_time" in figures) == (r.cell.model == "attn_rnn")
        assert figures["data_share"] < 1
    table = speed_table(rows)
    assert table.count("\n") == len(rows) + 1 and "suite/raw" in table


def test_the_stepped_recurrence_matches_the_fused_kernel_numerically(smoke_cells):
    import torch

    from suite.models import MODELS

    for family in ("rnn", "lstm", "gru"):
        cfg = MODELS[family].Config(hidden_size=8)
        fused, loop = MODELS[family](3, cfg), SteppedRNN(family, 3, cfg)
        rnn = fused.rnn
        loop.layers[0].weight_ih.data, loop.layers[0].weight_hh.data = rnn.weight_ih_l0.data, rnn.weight_hh_l0.data
        loop.layers[0].bias_ih.data, loop.layers[0].bias_hh.data = rnn.bias_ih_l0.data, rnn.bias_hh_l0.data
        x = torch.randn(2, 5, 3)
        assert torch.allclose(fused(x), loop(x), atol=1e-5), family


def test_speed_command_records_one_run_per_cell(in_store, capsys):
    assert main(["speed", "--profile", "smoke", "--tasks", "copy", "--models", "lstm,gru,attn_rnn", "--repeats", "1",
                 "--steps", "2", "--tracking-uri", in_store]) == 0
    out = capsys.readouterr().out
    assert "suite/raw" in out and "fused/stepped" in out
    exp = MlflowClient(in_store).get_experiment_by_name("rnnbench-speed")
    runs = MlflowClient(in_store).search_runs([exp.experiment_id])
    assert len(runs) == 3
    for r in runs:
        assert r.data.metrics["suite_vs_raw"] > 0 and r.data.tags["cpu"] and r.data.tags["torch_version"]
        assert r.data.tags["device"] == "cpu"  # the device used, not the setting (auto): a GPU run is another row
    assert next(r for r in runs if r.data.tags["model"] == "attn_rnn").data.metrics["attn_vs_base_step_time"] > 0


def test_speed_lengths_measures_cost_against_length_and_fits_a_slope(in_store, capsys, tmp_path):
    from suite.overall import slope

    assert slope([64, 256, 1024], [1.0, 4.0, 16.0]) == pytest.approx(1.0)  # linear in T
    assert slope([64, 256, 1024], [1.0, 16.0, 256.0]) == pytest.approx(2.0)  # quadratic
    assert main(["speed", "--lengths", "8,32", "--models", "lstm,transformer", "--repeats", "1", "--tracking-uri",
                 in_store, "--experiment", "t-scaling"]) == 0
    out = capsys.readouterr().out
    assert "time slope" in out and "memory slope" in out and "lstm" in out and "transformer" in out
    client = MlflowClient(in_store)
    runs = client.search_runs([client.get_experiment_by_name("t-scaling").experiment_id])
    assert sorted((r.data.tags["model"], r.data.tags["seq_len"]) for r in runs) == [
        ("lstm", "32"), ("lstm", "8"), ("transformer", "32"), ("transformer", "8")]
    assert all(r.data.tags["rnnbench_role"] == "scaling" and r.data.metrics["step_s"] > 0 for r in runs)
    assert main(["benchmark", "--profile", "smoke", "--models", "lstm", "--tasks", "adding", "--tracking-uri",
                 in_store, "--experiment", "t-scaling-cells"]) == 0
    site = tmp_path / "site"
    assert main(["report", "--tracking-uri", in_store, "--experiment", "t-scaling-cells", "--experiment",
                 "t-scaling", "--out", str(site)]) == 0
    index = (site / "index.html").read_text()
    assert "plots/cost-scaling.svg" in index and "time slope" in index
