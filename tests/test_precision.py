"""train.precision: what auto picks, what a network computes in, and 16-mixed's loss scaling (suite/precision.py)."""
from types import SimpleNamespace

import pytest
import torch

from suite.models import MODELS
from suite.precision import ComputeDtypes, auto, fused_modes, kernel_dtypes


def test_fused_models_are_told_apart_by_the_kernels_their_backbones_hold():
    assert fused_modes("lstm") == ("LSTM",) and fused_modes("attn_rnn") == ("GRU",)
    assert fused_modes("rnn") == ("RNN_TANH",) and fused_modes("irnn") == ("RNN_RELU",)
    assert all(fused_modes(m) == () for m in ("lru", "mamba", "transformer", "mingru", "s4d"))
    assert {m for m in MODELS if fused_modes(m)} == {"rnn", "irnn", "lstm", "gru", "attn_rnn"}
    assert {auto(m, "cpu") for m in MODELS} == {"32-true"}  # no autocast off CUDA


def test_the_kernel_probe_reads_what_the_fused_kernel_is_given():
    lstm = torch.nn.LSTM(3, 4, batch_first=True)
    assert kernel_dtypes(lstm, "32-true", "cpu") == {"kernel": "mkldnn_rnn_layer", "computes": "float32",
                                                     "input": "float32", "weight": "float32", "output": "float32"}
    gru = kernel_dtypes(torch.nn.GRU(3, 4, batch_first=True), "bf16-mixed", "cpu")  # the CPU composes GRU
    assert gru["kernel"] is None and gru["computes"] == gru["output"]


@pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(),
                    reason="this CPU has no oneDNN bfloat16 (AVX512-BF16 or AMX): its fused LSTM takes no bfloat16")
def test_the_kernel_probe_reads_a_bfloat16_fused_kernel():
    bf16 = kernel_dtypes(torch.nn.LSTM(3, 4, batch_first=True), "bf16-mixed", "cpu")
    assert bf16["kernel"] == "mkldnn_rnn_layer" and bf16["computes"] == bf16["weight"] == "bfloat16"


def test_compute_dtypes_records_the_first_forward_only():
    from suite.models.network import Network

    net = Network("rnn", MODELS["rnn"].Config(hidden_size=8), 3, 4, every_step=False)  # composed on any CPU
    with torch.autocast("cpu", torch.bfloat16):
        watch = ComputeDtypes(net)
        net(torch.randn(2, 5, 3))
    net(torch.randn(2, 5, 3))  # a float32 forward after the hooks are gone
    assert watch.summary() == "RNN_TANH bfloat16 · Linear bfloat16" and watch.hooks == []


def test_a_16_mixed_step_scales_the_loss_and_takes_the_step_an_unscaled_one_takes():
    """SeqModule steps its own optimizer, so under 16-mixed it scales through the precision plugin's GradScaler:
    scaled by 2^12 then unscaled before clipping, the update is the one an unscaled step makes."""
    from suite.config import TrainConfig
    from suite.module import SeqModule
    from tasks import TASKS

    task = TASKS["adding"](TASKS["adding"].Config(seq_len=10))
    train = TrainConfig(grad_clip=0.5)
    x, y = task.train_batch(8, torch.Generator().manual_seed(0), "cpu")
    steps = []
    for scaler in (None, torch.amp.GradScaler("cpu", init_scale=2.0**12)):
        torch.manual_seed(0)
        module = SeqModule("lstm", MODELS["lstm"].Config(hidden_size=8), task, train)
        opt = module.configure_optimizers()
        module.optimizers = lambda use_pl_optimizer=False, opt=opt: opt
        module._trainer = SimpleNamespace(precision_plugin=SimpleNamespace(scaler=scaler))
        module.training_step([(x, y)], 0)
        steps.append({k: v.detach().clone() for k, v in module.net.state_dict().items()})
    plain, scaled = steps
    assert scaler._scale is not None  # the loss went through the scaler
    for name in plain:
        torch.testing.assert_close(scaled[name], plain[name], rtol=1e-5, atol=1e-7, msg=name)
