"""Initialisation schemes: each one's defining property, recorded on the run, and part of the config hash."""
import math

import pytest
import torch

from suite.models import MODELS, Network
from suite.models.init import chrono_range


def layers(model, init, hidden=16, layers=2, steps=50, **settings):
    """The recurrent layer (nn.RNN/LSTM/GRU) of a freshly initialised network."""
    torch.manual_seed(0)
    cfg = MODELS[model].Config(hidden_size=hidden, num_layers=layers, init=init, **settings)
    net = Network(model, cfg, input_size=3, n_outputs=5, every_step=False, steps=steps)
    return net, next(m for m in net.modules() if isinstance(m, torch.nn.RNNBase))


def blocks(w, H):
    return [w[i:i + H] for i in range(0, w.shape[0], H)]


@pytest.mark.parametrize("model", ["rnn", "lstm", "gru"])
def test_torch_is_the_framework_default(model):
    _, rnn = layers(model, "torch")
    bound = 1 / math.sqrt(16)
    for name, p in rnn.named_parameters():
        assert p.abs().max() <= bound, name
        assert p.abs().max() > 0.8 * bound, name  # uniform over the whole range, biases too


@pytest.mark.parametrize("model", ["rnn", "lstm", "gru"])
def test_keras_is_glorot_input_orthogonal_recurrent_zero_bias(model):
    net, rnn = layers(model, "keras")
    H, gates = 16, {"rnn": 1, "lstm": 4, "gru": 3}[model]
    for layer, fan_in in ((0, 3), (1, 16)):
        w_ih, w_hh = getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")
        assert w_ih.abs().max() <= math.sqrt(6 / (fan_in + gates * H))  # Glorot-uniform's bound
        assert torch.allclose(w_hh.T @ w_hh, torch.eye(H), atol=1e-5)  # orthonormal columns
        b = getattr(rnn, f"bias_ih_l{layer}") + getattr(rnn, f"bias_hh_l{layer}")
        expected = torch.zeros(gates * H)
        if model == "lstm":
            expected[H:2 * H] = 1.0  # the forget gate (PyTorch's order i, f, g, o)
        assert torch.equal(b, expected)
    assert net.head.bias.abs().max() == 0 and net.head.weight.abs().max() <= math.sqrt(6 / (16 + 5))


@pytest.mark.parametrize("model", ["rnn", "lstm", "gru"])
def test_orthogonal_makes_every_gates_recurrent_matrix_orthogonal(model):
    _, rnn = layers(model, "orthogonal")
    for w in blocks(rnn.weight_hh_l1, 16):
        assert torch.allclose(w @ w.T, torch.eye(16), atol=1e-5)


@pytest.mark.parametrize("model", ["rnn", "irnn"])
def test_identity_is_the_irnn(model):
    _, rnn = layers(model, "identity")
    assert torch.equal(rnn.weight_hh_l0, torch.eye(16)) and torch.equal(rnn.weight_hh_l1, torch.eye(16))
    assert rnn.bias_ih_l0.abs().max() == 0 and rnn.bias_hh_l0.abs().max() == 0
    assert 0.0005 < rnn.weight_ih_l1.std() < 0.002  # N(0, 0.001^2)


def test_the_irnn_is_a_relu_rnn_with_identity_by_default():
    cfg = MODELS["irnn"].Config()
    assert (cfg.nonlinearity, cfg.init) == ("relu", "identity")
    _, rnn = layers("irnn", cfg.init)
    assert rnn.nonlinearity == "relu"
    assert MODELS["rnn"](3, MODELS["rnn"].Config(nonlinearity="relu")).rnn.nonlinearity == "relu"


@pytest.mark.parametrize("model", ["lstm", "gru"])
def test_chrono_spreads_gate_biases_over_the_tasks_length(model):
    steps = 120
    _, rnn = layers(model, "chrono", hidden=256, steps=steps)
    low, high = chrono_range(steps)
    b = blocks(rnn.bias_ih_l0 + rnn.bias_hh_l0, 256)
    keep = b[1]  # LSTM's forget gate, GRU's z (which keeps the old state in PyTorch's GRU)
    assert low <= keep.min() and keep.max() <= high and keep.max() > 0.9 * high  # log U[1, T-1]
    if model == "lstm":
        assert torch.equal(b[0], -keep)  # the input gate opens as the forget gate closes
    assert torch.allclose(rnn.weight_hh_l0.T @ rnn.weight_hh_l0, torch.eye(256), atol=1e-4)  # keras otherwise


def test_a_scheme_a_model_does_not_have_is_refused_with_its_choices():
    from suite.errors import UserError
    from suite.experiment import apply_sets, load_raw, plan

    raw, _, source = load_raw("smoke")
    with pytest.raises(UserError, match="model.init: Input should be 'torch', 'keras', 'orthogonal' or 'chrono'"):
        plan(apply_sets({**raw, "models": ["lstm"]}, ["model.init=identity"]), source)


def test_init_is_a_param_a_tag_and_in_the_hash(in_store):
    from mlflow import MlflowClient

    from suite.cli import main
    from suite.experiment import load_experiment

    a, b = (load_experiment("smoke", sets=[f"model.init={s}"], models=["lstm"], tasks=["adding"], announce=None)
            .cells[0] for s in ("torch", "chrono"))
    assert a.config_hash != b.config_hash
    assert main(["run", "--profile", "smoke", "--model", "lstm", "--task", "adding", "--set", "model.init=chrono",
                 "--tracking-uri", in_store, "--experiment", "t-init"]) == 0
    client = MlflowClient(in_store)
    (run,) = client.search_runs([client.get_experiment_by_name("t-init").experiment_id])
    assert run.data.params["model.init"] == "chrono" and run.data.tags["init"] == "chrono"
