"""Gradient flow: one finite norm a step, the unrolled cells match the fused kernels, runs record it."""
import math

import pytest
import torch
from mlflow import MlflowClient

from suite.cli import main
from suite.diagnostics import decay_per_step, hidden_grad_norms
from suite.models import MODELS, Network
from tasks.adding import Adding, AddingConfig
from tasks.copy import Copy, CopyConfig


def x_len(task):
    return task.make_batch(1, torch.Generator().manual_seed(0), "cpu")[0].shape[1]


@pytest.mark.parametrize("model", [m for m in MODELS if hasattr(MODELS[m], "unroll")])  # those that expose states
@pytest.mark.parametrize("task", [Adding(AddingConfig(seq_len=12)), Copy(CopyConfig(seq_len=4))], ids=["adding", "copy"])
def test_one_finite_norm_a_step(model, task):
    torch.manual_seed(0)
    net = Network(model, MODELS[model].Config(hidden_size=8, num_layers=2), task.input_size, task.n_outputs,
                  task.output_kind == "class_every", steps=x_len(task))
    x, y = task.make_batch(4, torch.Generator().manual_seed(0), "cpu")
    norms = hidden_grad_norms(net, task, x, y)
    assert len(norms) == x.shape[1] and all(math.isfinite(n) and n >= 0 for n in norms) and norms[-1] > 0
    assert math.isfinite(decay_per_step(norms))


@pytest.mark.parametrize("model", ["rnn", "lstm", "gru"])
def test_the_unrolled_steps_compute_what_the_fused_kernel_does(model):
    fused = MODELS[model](3, MODELS[model].Config(hidden_size=6, num_layers=2))
    x = torch.randn(2, 7, 3)
    assert torch.allclose(fused(x), fused.stepped()(x), atol=1e-5)


def test_decay_slope():
    assert decay_per_step([math.exp(-0.5 * d) for d in range(9, -1, -1)]) == pytest.approx(-0.5)


def test_gradflow_command_and_in_run_recording(in_store, capsys):
    assert main(["run", "--profile", "smoke", "--model", "lstm", "--task", "adding", "--set", "train.gradflow=true",
                 "--tracking-uri", in_store, "--experiment", "t-gf-run"]) == 0
    client = MlflowClient(in_store)
    (run,) = client.search_runs([client.get_experiment_by_name("t-gf-run").experiment_id])
    assert {"grad_decay_per_step_init", "grad_decay_per_step"} <= set(run.data.metrics)
    assert {"gradflow.csv", "gradflow.png"} <= {f.path for f in client.list_artifacts(run.info.run_id)}
    assert len(run.outputs.model_outputs) == 1  # its network: a logged model, what --checkpoint loads below

    assert main(["gradflow", "--task", "adding", "--profile", "smoke", "--models", "lstm", "--checkpoint",
                 run.info.run_id, "--tracking-uri", in_store, "--experiment", "t-gf"]) == 0
    (gf,) = client.search_runs([client.get_experiment_by_name("t-gf").experiment_id])
    assert gf.data.tags["trained_runs"] == run.info.run_id
    assert gf.data.metrics["grad_decay_per_step_lstm"] == pytest.approx(run.data.metrics["grad_decay_per_step"], rel=1e-4)
    csv = client.download_artifacts(gf.info.run_id, "gradflow.csv")
    lines = open(csv).read().splitlines()
    assert lines[0] == "t,distance,grad_norm_lstm init,grad_norm_lstm trained" and len(lines) == 21  # T=20 steps
    assert "lstm" in capsys.readouterr().out


def test_a_backbone_without_states_is_skipped_with_its_reason():
    """Gradient flow asks the backbone for unroll(); one without it is recorded as skipped, not a failure."""
    from types import SimpleNamespace

    from suite.diagnostics import record_gradflow, unmeasurable

    tags = {}
    client = SimpleNamespace(set_tag=lambda run, key, value: tags.__setitem__(key, value))
    module = SimpleNamespace(net=SimpleNamespace(backbone=torch.nn.GRU(2, 4)))
    assert record_gradflow(client, "run", module, {}, None, None, "title") == {}
    assert tags == {"gradflow_skipped": unmeasurable(module.net.backbone)} and "unroll" in tags["gradflow_skipped"]
    assert unmeasurable(MODELS["lstm"](2, MODELS["lstm"].Config(hidden_size=4))) is None
