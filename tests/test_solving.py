"""Scores against chance and the solve rule: test_vs_chance, solved, steps_to_solve, stopping early."""
import math

import pytest
import torch
from mlflow import MlflowClient

from suite.cli import main
from suite.config import TrainConfig
from suite.models import MODELS
from suite.module import SeqModule
from tasks.adding import Adding, AddingConfig
from tasks.copy import Copy, CopyConfig
from tasks.mnist_rows import MnistRows


@pytest.mark.parametrize("task", [Adding(AddingConfig(seq_len=30)), Copy(CopyConfig(seq_len=30))], ids=["adding", "copy"])
def test_a_blind_constant_predictor_scores_one_against_chance(task):
    x, y = task.splits(1, 20_000, "cpu")["test"]
    module = SeqModule("gru", MODELS["gru"].Config(hidden_size=4), task, TrainConfig())
    if task.name == "adding":
        module.forward = lambda x: torch.full((len(x), 1), 1.0)  # the mean of the target
    else:
        logits = torch.full((1, 50, task.n_outputs), -1e4)
        logits[:, :40, 0], logits[:, 40:, 1:] = 0, 0  # blanks, then uniform over the 8 symbols
        module.forward = lambda x: logits.expand(len(x), -1, -1)
    loss, _ = module.model_step((x, y))
    assert loss.item() / task.chance_loss() == pytest.approx(1.0, abs=0.02)


def test_solve_rules():
    adding, copy = Adding(AddingConfig(solved_mse=0.01)), Copy(CopyConfig(solved_acc=0.99))
    assert adding.is_solved(0.009) and not adding.is_solved(0.01)
    assert copy.is_solved(0.99) and not copy.is_solved(0.98)
    assert MnistRows(MnistRows.Config()).is_solved(1.0) is None


def test_a_solved_run_records_when_and_stops_early(in_store):
    args = ["run", "--profile", "smoke", "--model", "lstm", "--task", "adding", "--set", "task.solved_mse=1.0",
            "--set", "train.stop_when_solved=1", "--set", "train.epochs=3", "--tracking-uri", in_store,
            "--experiment", "t-solve"]
    assert main(args) == 0
    client = MlflowClient(in_store)
    (run,) = client.search_runs([client.get_experiment_by_name("t-solve").experiment_id])
    m = run.data.metrics
    assert m["solved"] == 1 and m["steps_to_solve"] == 8 and m["time_to_solve_s"] > 0
    assert m["epochs_trained"] == 1  # stopped after the first solved validation instead of 3 epochs
    assert m["test_vs_chance"] == pytest.approx(m["test_loss"] / m["chance_loss"])


def test_an_unsolved_run_says_so_and_mnist_has_no_rule(in_store):
    assert main(["benchmark", "--profile", "smoke", "--models", "rnn", "--tasks", "copy,mnist_rows",
                 "--tracking-uri", in_store, "--experiment", "t-unsolved"]) == 0
    client = MlflowClient(in_store)
    runs = {r.data.tags["task"]: r.data.metrics for r in client.search_runs([client.get_experiment_by_name("t-unsolved").experiment_id])}
    assert runs["copy"]["solved"] == 0 and "steps_to_solve" not in runs["copy"]
    assert "solved" not in runs["mnist_rows"] and math.isfinite(runs["mnist_rows"]["test_vs_chance"])


@pytest.mark.parametrize("model", sorted(__import__("suite.models", fromlist=["MODELS"]).MODELS))
def test_every_model_learns_a_tiny_adding_problem(model):
    """Every registered model, at ~3k parameters, learns adding T=10 well below chance in 300 Adam steps (the iRNN
    in 1,000: its input weights start at N(0, 0.001²), so it starts slowly; 0.84 of chance after 300)."""
    from suite.models import MODELS
    from suite.models.network import resolve

    torch.manual_seed(0)
    task = Adding(AddingConfig(seq_len=10))
    cfg = resolve(model, MODELS[model].Config(param_budget=3000), task.input_size, task.n_outputs)
    module = SeqModule(model, cfg, task, TrainConfig())
    opt = torch.optim.Adam(module.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(1)
    for _ in range(1000 if model == "irnn" else 300):
        loss, _ = module.model_step(task.make_batch(64, gen, "cpu"), metric=False)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = task.splits(1, 1000, "cpu")["test"]
    with torch.no_grad():
        loss, _ = module.model_step((x, y), metric=False)
    assert loss.item() / task.chance_loss() < 0.2, (model, loss.item() / task.chance_loss())
