"""Contract tests over the model registry: shapes per output kind, matched budgets, causality, learning."""

import pytest
import torch

from suite.config import TrainConfig
from suite.models import MODELS, Network, count_params, resolve
from suite.module import SeqModule
from tasks import TASKS
from tasks.adding import Adding, AddingConfig
from tasks.copy import Copy, CopyConfig


def cfg(model, **settings):
    """Each model's own Config, 16 units (attn_rnn: 4 heads)."""
    return MODELS[model].Config(**{"hidden_size": 16, **({"heads": 4} if model == "attn_rnn" else {}), **settings})


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("every_step,expected", [(True, (3, 7, 5)), (False, (3, 5))])
def test_output_shape_per_kind(model, every_step, expected):
    net = Network(model, cfg(model), input_size=2, n_outputs=5, every_step=every_step, steps=7)
    assert net(torch.randn(3, 7, 2)).shape == expected


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("budget", [3_000, 20_000, 100_000, 400_000])
def test_param_budget_lands_within_five_percent(model, budget):
    sized = resolve(model, cfg(model, param_budget=budget), input_size=10, n_outputs=9)
    n = count_params(model, sized, 10, 9)
    real = sum(p.numel() for p in Network(model, sized, 10, 9, every_step=True, steps=50).parameters())
    assert n == real and abs(n - budget) <= 0.05 * budget


def test_param_budget_too_small_is_a_clear_error():
    from suite.errors import UserError

    with pytest.raises(UserError, match="param_budget"):
        resolve("attn_rnn", cfg("attn_rnn", param_budget=50, heads=8), 10, 9)


@pytest.mark.parametrize("core", ["gru", "lstm"])
def test_attention_is_causal(core):
    torch.manual_seed(0)
    net = Network("attn_rnn", cfg("attn_rnn", core=core), 3, 4, every_step=True).eval()
    x = torch.randn(2, 12, 3)
    changed = x.clone()
    changed[:, 8:] = torch.randn(2, 4, 3)
    a, b = net(x), net(changed)
    assert torch.allclose(a[:, :8], b[:, :8], atol=1e-6)
    assert not torch.allclose(a[:, 8:], b[:, 8:])


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("task", [Adding(AddingConfig(seq_len=10)), Copy(CopyConfig(seq_len=5))], ids=["adding", "copy"])
def test_a_tiny_training_run_lowers_the_loss(model, task):
    torch.manual_seed(0)
    module = SeqModule(model, MODELS[model].Config(hidden_size=32), task, TrainConfig(lr=1e-2))
    opt = module.configure_optimizers()
    batch = task.make_batch(64, torch.Generator().manual_seed(0), "cpu")
    first = module.model_step(batch)[0].item()
    for _ in range(40):
        opt.zero_grad()
        module.model_step(batch)[0].backward()
        opt.step()
    assert module.model_step(batch)[0].item() < 0.7 * first


def test_metrics_per_kind():
    task = Copy(CopyConfig(seq_len=5))
    module = SeqModule("gru", cfg("gru", hidden_size=8), task, TrainConfig())
    x, y = task.make_batch(4, torch.Generator().manual_seed(0), "cpu")
    perfect = torch.nn.functional.one_hot(y, task.n_outputs).float() * 50
    module.forward = lambda _: perfect
    loss, correct = module.model_step((x, y))
    assert loss.item() < 1e-6 and correct.item() == 4  # each sequence: all 10 recalled symbols right
    module.forward = lambda _: torch.zeros_like(perfect).index_fill_(2, torch.tensor([1]), 50)  # always symbol 1
    assert module.model_step((x, y))[1].item() == pytest.approx((y[:, -10:] == 1).float().mean(1).sum().item())


def test_registry_models_use_fused_kernels_only():
    """rnn/lstm/gru are nn.RNN/LSTM/GRU: one fused call, no Python loop over time."""
    for name in ("rnn", "lstm", "gru"):
        net = MODELS[name](4, cfg(name))
        assert type(net.rnn) is {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[name]
    assert MODELS["rnn"](4, cfg("rnn")).rnn.nonlinearity == "tanh"
    assert set(TASKS)  # registry imported


def test_last_only_attention_equals_the_last_step_of_full_attention():
    torch.manual_seed(0)
    backbone = MODELS["attn_rnn"](3, cfg("attn_rnn")).eval()
    x = torch.randn(2, 9, 3)
    assert torch.allclose(backbone(x)[:, -1], backbone(x, last_only=True)[:, -1], atol=1e-6)


def test_attention_weights_are_causal_rows_that_sum_to_one():
    backbone = MODELS["attn_rnn"](3, cfg("attn_rnn")).eval()
    w = backbone.attention_weights(torch.randn(2, 6, 3))
    assert w.shape == (2, 6, 6) and torch.allclose(w.sum(-1), torch.ones(2, 6))
    assert (w.triu(1) == 0).all()  # nothing attends to a later step
