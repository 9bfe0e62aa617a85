"""User mistakes: one line on stderr naming the field, exit 2, nothing trained or recorded."""
import subprocess
import sys
from pathlib import Path

import pytest

from suite.cli import main
from suite.experiment import load_raw, plan

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path, text):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return str(path)


BAD = [  # (config text or None, extra CLI args, what the one line must name)
    ("models: [rnn]\ntrian: {epochs: 1}\n", [], "trian: unknown key"),
    ("train: {epochs: 1, lrr: 0.1}\n", [], "train.lrr: unknown key; allowed here: epochs"),
    ("train: {lr: -0.1}\n", [], "train.lr: Input should be greater than 0"),
    ("train: {epochs: ten}\n", [], "train.epochs: Input should be a valid integer"),
    ("models: [lstmm]\n", [], "models: unknown model 'lstmm'; known: rnn, irnn, lstm, gru, attn_rnn"),
    ("tasks: {copyy: {}}\n", [], "tasks.copyy: unknown task; known:"),
    ("tasks: {copy: {seq_len: -5}}\n", [], "tasks.copy.seq_len: Input should be greater than or equal to 1"),
    ("tasks: {adding: {seq_len: [100, 1]}}\n", [], "tasks.adding.seq_len: Input should be greater than or equal to 2"),
    ("tasks: {mnist_rows: {source: web}}\n", [], "tasks.mnist_rows.source: Input should be 'auto', 'hf', 'local' or 'mnist-5k'"),
    ("model: {dropout: 1.5}\n", [], "model.dropout: Input should be less than 1"),
    ("train: {precision: fp8}\n", [], "train.precision: Input should be"),
    ("train: [1, 2]\n", [], "train: expected a mapping"),
    ("seeds: [-1]\n", [], "seeds: expected a list of non-negative integers"),
    ("models: [rnn\n", [], "not valid YAML"),
    ("tasks: {copy: {seq_len: 5}}\n", ["--set", "train.lr"], "--set: 'train.lr' is not key=value"),
    ("tasks: {copy: {seq_len: 5}}\n", ["--set", "model.hiden=3"], "model.hiden: unknown key"),
    ("tasks: {copy: {seq_len: 5}}\n", ["--tracking-uri", "http://127.0.0.1:9"], "tracking server http://127.0.0.1:9 unreachable"),
    ("tasks: {copy: {seq_len: 5}}\n", ["--tracking-uri", "sqlite:////no/such/dir/m.db"], "folder /no/such/dir"),
]


@pytest.mark.parametrize("text,args,expected", BAD, ids=[b[2][:40] for b in BAD])
def test_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, text, args, expected):
    monkeypatch.chdir(tmp_path)
    code = main(["benchmark", "--config", write(tmp_path, text), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("rnnbench: error: ") and expected in err, err
    assert not (tmp_path / "mlflow.db").exists()  # nothing was recorded


@pytest.mark.parametrize("args,expected", [
    (["run", "--model", "nope", "--task", "copy", "--profile", "smoke"], "models: unknown model 'nope'"),
    (["run", "--model", "rnn", "--task", "nope", "--profile", "smoke"], "tasks.nope: unknown task"),
    (["run", "--profile", "smoke"], "run trains one cell but this config has 16"),
    (["benchmark", "--profile", "gpu"], "--profile: unknown profile 'gpu'"),
    (["benchmark", "--config", "nope.yaml"], "--config: nope.yaml not found"),
    (["benchmark", "--seeds", "two"], "argument --seeds: expected an integer"),
    (["benchmark", "--seeds", "0"], "--seeds: needs at least 1"),
    (["bench"], "invalid choice: 'bench'"),
])
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, monkeypatch, capsys, args, expected):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err


def test_every_shipped_config_is_valid():
    for path in sorted([*(ROOT / "configs/profiles").glob("*.yaml"), *(ROOT / "configs/experiments").glob("*.yaml")]):
        raw, _, source = load_raw(config=str(path))
        assert plan(raw, source), path
        assert path.read_text().startswith("# "), f"{path} must start with a comment: command, result, time"


def test_keras_seed_is_two_stacked_50_unit_rnns_on_mnist_rows():
    raw, name, source = load_raw(config=str(ROOT / "configs/experiments/keras_seed.yaml"))
    (cell,) = plan(raw, source)
    assert (cell.model, cell.task, cell.model_cfg.hidden_size, cell.model_cfg.num_layers) == ("rnn", "mnist_rows", 50, 2)
    assert (cell.train.optimizer, cell.train.batch_size, cell.train.epochs) == ("adam", 128, 10)


def test_help_and_list_run_in_a_fresh_process_without_heavy_imports():
    out = subprocess.run([sys.executable, "-c", "import sys; from suite.cli import main; main(['--help'])\n"
                          "", ], capture_output=True, text=True, cwd=ROOT)
    assert "benchmark" in out.stdout
    probe = "import sys, suite.cli; assert not {'torch', 'lightning', 'mlflow'} & set(sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], cwd=ROOT).returncode == 0
    listing = subprocess.run([sys.executable, "-m", "suite", "list"], capture_output=True, text=True, cwd=ROOT)
    assert listing.returncode == 0 and "attn_rnn" in listing.stdout and "mnist_pixels" in listing.stdout
