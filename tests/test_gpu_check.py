"""The GPU check's logic on the CPU (`--device cpu --quick`), as a bare GPU machine runs it: without MLflow or
Optuna importable."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # a minute: every section of the check, on the CPU
def test_the_gpu_check_runs_without_mlflow_or_optuna_and_writes_one_summary(tmp_path):
    import torch

    blocked = tmp_path / "blocked"
    blocked.mkdir()
    for name in ("mlflow", "optuna", "optuna_integration"):  # what the GPU machine does not have
        (blocked / f"{name}.py").write_text("raise ImportError('not installed on the GPU machine')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocked), str(ROOT)]), "RNNBENCH_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "suite.studies.gpu_check", "--device", "cpu", "--quick", "--out",
                           str(tmp_path / "out")], env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert summary["ok"] and len(summary["smoke"]) == 4 and all(r["ok"] for r in summary["smoke"])
    for r in summary["smoke"]:  # no autocast on the CPU: every layer and kernel in float32
        assert r["precision"] == "32-true" and r["linear"] == ["float32"]
        assert [k["computes"] for k in r["kernels"]] == ["float32"]
    lstm = {r["precision"]: r for r in summary["precision"]}  # the CPU's oneDNN LSTM kernel, in each precision
    assert set(lstm) == {"bf16-mixed", "16-mixed", "32-true"} and lstm["32-true"]["auto"]
    mkldnn = torch.ops.mkldnn  # what this CPU's oneDNN computes in: bfloat16 and float16 are each its own question
    has = {"32-true": True, "bf16-mixed": mkldnn._is_mkldnn_bf16_supported(),
           "16-mixed": hasattr(mkldnn, "_is_mkldnn_fp16_supported") and mkldnn._is_mkldnn_fp16_supported()}
    for precision, r in lstm.items():  # 32-true everywhere; bf16 and float16 where this CPU's oneDNN has them
        if r["kernel"] or has[precision]:
            assert r["kernel"] == "mkldnn_rnn_layer" and r["computes_as_claimed"], r
        else:  # a row that says so in one line; the check stays ok (auto picks 32-true on the CPU)
            assert r["error"] and "\n" not in r["error"] and not r["samples_per_s"]
    assert lstm["bf16-mixed"]["input"] in ("bfloat16", None) and lstm["16-mixed"]["weight"] in ("float16", None)
    assert lstm["32-true"]["samples_per_s"] and not lstm["32-true"]["error"]  # the others: as this CPU's oneDNN allows
    assert all(bool(r["samples_per_s"]) != bool(r["error"]) for r in lstm.values())
    assert sum(r.get("fastest", False) for r in lstm.values()) == 1
    ways = {(r["length"], r["way"]) for r in summary["fill"]}
    for length in (20, 50):  # the quick run's short and long cell
        assert {(length, w) for w in ("alone", "2 processes", "2 streams", "3 seeds block-diagonal", "3 seeds vmapped",
                                      "alone (stepped)", "3 seeds vmapped (stepped)")} <= ways
    assert all(r["samples_per_s"] > 0 and r["gain"] > 0 for r in summary["fill"])
    assert [r["way"] for r in summary["graph"]] == ["stepped, eager"]  # a CUDA graph needs CUDA
    assert {r["task"] for r in summary["checksums"]} >= {"copy", "adding", "selective_copy", "assoc_recall"}
    assert all(r["same"] for r in summary["checksums"])
    assert summary["speed"] and 0.5 < summary["speed"][0]["suite_vs_raw"] < 2
    estimate = summary["estimate"]
    assert estimate["cells"] > 100 and estimate["one_at_a_time_h"] > 0
    assert set(estimate["under_each_way"]) == {"processes", "streams", "seeds vmapped", "seeds block-diagonal", "best"}
    assert estimate["under_each_way"]["best"] <= estimate["one_at_a_time_h"] * 1.0001
    text = (tmp_path / "out" / "gpu_check.md").read_text()
    assert "| cell | ok | precision | computes in" in text and "| fused model | precision | auto" in text
    assert "| cell | way | networks | aggregate samples/s" in text and "under each way" in text


def _lstm_nets(seeds: int, every_step: bool, layers: int = 1):
    import torch

    from suite.models import MODELS
    from suite.models.network import Network

    nets = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        nets.append(Network("lstm", MODELS["lstm"].Config(hidden_size=6, num_layers=layers), 3, 4, every_step,
                            steps=5))
    return nets


@pytest.mark.parametrize(("every_step", "layers"), [(False, 1), (True, 2)])
def test_block_diagonal_lstm_gives_each_seed_the_output_and_gradient_it_has_alone(every_step, layers):
    import torch
    import torch.nn.functional as F

    from suite.studies.block_lstm import BlockLSTM

    nets = _lstm_nets(3, every_step, layers)
    block = BlockLSTM(nets)
    x = torch.randn(3, 8, 5, 3)  # each seed its own batch
    y = torch.randint(4, (3, 8, 5) if every_step else (3, 8))
    out = block(x)

    def loss(o, t):
        return F.cross_entropy(o.reshape(-1, 4), t.reshape(-1))

    sum(loss(out[s], y[s]) for s in range(3)).backward()
    block.clip_each(0.05)
    for s, net in enumerate(nets):
        alone = net(x[s])
        torch.testing.assert_close(out[s], alone, rtol=1e-5, atol=1e-6)
        loss(alone, y[s]).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 0.05)
        grads = block.seed_grads(s)
        for name, p in net.named_parameters():
            torch.testing.assert_close(grads[name], p.grad, rtol=1e-4, atol=1e-7, msg=name)
    opt = torch.optim.Adam(block.parameters(), lr=0.1)
    opt.step()  # the cross-seed blocks got no gradient: they stay zero
    for name, big in block.rnn.named_parameters():
        if not name.startswith("bias"):
            kept = sum(block.block(big, s, name).abs().sum() for s in range(3))
            assert torch.isclose(big.abs().sum(), kept), name


def test_vmapped_seeds_take_the_steps_each_seed_takes_alone():
    """One vmapped step of S stacked networks moves each seed's weights as its own step alone would."""
    import dataclasses

    import torch

    from suite.experiment import load_experiment
    from suite.studies import fill

    exp = load_experiment(None, str(ROOT / "configs/profiles/smoke.yaml"), announce=None, models=["lru"],
                          tasks=["adding"])
    cell = exp.cells[0]
    cell = dataclasses.replace(cell, train=dataclasses.replace(cell.train, device="cpu"))
    alone = [fill.job(dataclasses.replace(cell, seed=i), "cpu") for i in range(2)]
    for j in alone:
        j.step(0)
    stacked = fill.vmapped(cell, "cpu", 2, steps=1, warmup=0, keep=True)
    for i, j in enumerate(alone):
        for name, p in j.net.named_parameters():
            torch.testing.assert_close(stacked["params"][name][i], p.detach(), rtol=1e-4, atol=1e-6, msg=name)


def test_the_stepped_tanh_rnn_computes_what_the_fused_one_does():
    import torch

    from suite.studies.fill import SteppedTanh

    rnn = torch.nn.RNN(3, 5, batch_first=True)
    x = torch.randn(4, 7, 3)
    torch.testing.assert_close(SteppedTanh(rnn)(x), rnn(x)[0], rtol=1e-5, atol=1e-6)


def test_an_unknown_section_is_refused_in_one_line_and_writes_nothing(tmp_path, capsys):
    from suite.studies.gpu_check import main

    assert main(["--device", "cpu", "--only", "smoke,fil", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == ("gpu_check: --only: unknown section fil; choose from "
                                               "smoke,precision,speed,long,fill,graph,checksums,estimate")
    assert not (tmp_path / "out").exists()
