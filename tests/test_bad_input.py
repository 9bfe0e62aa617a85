"""Every bad input of every subcommand: exit 2, one line on stderr, no traceback, no secret, fast, and nothing
written: the store's contents and the working folder are as they were."""
import gzip
import hashlib
import os
import shutil
import sqlite3
import time

import pytest

from suite.cli import main
from tests.disks import read_only

SECRET = "s3cret"
NEST = "a: " + "[" * 100 + "]" * 100 + "\n"
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefghi", "bcdefghij", strict=True))
SMOKE_ADDING = "# smoke\nmodels: [rnn]\ntasks: {adding: {seq_len: 5}}\n"

# (argv with {store} {cfg} {dir} placeholders, config text for {cfg} or None, the words the line must hold)
CASES = [
    # experiment files
    (["benchmark", "--config", "{cfg}"], BOMB, "YAML aliases (*name) are not allowed"),
    (["benchmark", "--config", "{cfg}"], NEST, "nested more than 32 levels"),
    (["benchmark", "--config", "{cfg}"], b"\xff\xfe\x00binary\x00", "not UTF-8 text"),
    (["benchmark", "--config", "{cfg}"], "", "empty; an experiment names"),
    (["benchmark", "--config", "{cfg}"], "# only a comment\n", "empty; an experiment names"),
    (["benchmark", "--config", "{cfg}"], "- rnn\n- lstm\n", "expected a mapping of settings"),
    (["benchmark", "--config", "{cfg}"], "models: [rnn]\n" + "#" * (1 << 20), "an experiment file is at most"),
    (["benchmark", "--config", "{cfg}"], "models: [rnn\n", "not valid YAML"),
    (["benchmark", "--config", "{cfg}"], "modles: [rnn]\n", "modles: unknown key"),
    (["benchmark", "--config", "{cfg}"], "models: []\ntasks: {adding: {}}\n", "nothing to run"),
    (["benchmark", "--config", "{cfg}"], "seeds: []\ntasks: {adding: {}}\n", "nothing to run"),
    (["benchmark", "--config", "{cfg}"], "seeds: [1000003]\ntasks: {adding: {}}\n", "draws the validation sets"),
    (["benchmark", "--config", "{cfg}"], "train: {lr: .nan}\ntasks: {adding: {}}\n", "train.lr: Input should be a finite"),
    (["benchmark", "--config", "{cfg}"], "train: {lr: .inf}\ntasks: {adding: {}}\n", "train.lr: Input should be a finite"),
    (["benchmark", "--config", "{cfg}"], "model: {param_budget: 5}\ntasks: {adding: {}}\n", "cannot get within 5%"),
    (["benchmark", "--config", "{cfg}"], "tasks: {mnist_rows: {source: local, path: /no/such}}\n", "does not exist"),
    (["benchmark", "--config", "{cfg}"], "tasks: {mnist_rows: {path: '{dir}/junk'}}\n", "is not readable MNIST"),
    (["benchmark", "--config", "{cfg}"], "tasks: {mnist_rows: {path: '{dir}/idx'}}\n", "not an IDX file"),
    (["benchmark", "--config", "{cfg}"], "tasks: {copy: {seq_len: 0}}\n", "tasks.copy.seq_len: Input should be greater"),
    (["benchmark", "--config", "{cfg}"], "models: [lstm]\nmodel: {init: identity}\ntasks: {adding: {}}\n", "model.init"),
    (["benchmark", "--config", "{cfg}"], "models: [rnn]\nmodel: {nonlinearity: sigmoid}\ntasks: {adding: {}}\n",
     "model.nonlinearity"),
    (["benchmark", "--config", "{cfg}"], "train: {device: cuda}\ntasks: {adding: {}}\n", "no CUDA device"),
    (["benchmark", "--config", "{cfg}"], "horizon: {copy: [0]}\ntasks: {adding: {}}\n", "horizon.copy.0"),
    (["benchmark", "--config", "{cfg}"], "horizon: {mnist_rows: [10]}\ntasks: {adding: {}}\n", "fixed length"),
    (["benchmark", "--config", "{cfg}"], "stores: {tracking_uri: 5}\ntasks: {adding: {}}\n", "stores.tracking_uri"),
    (["benchmark", "--config", "{cfg}"], "tune: {trials: 0}\ntasks: {adding: {}}\n", "tune.trials"),
    (["benchmark", "--config", "/no/such.yaml"], None, "--config: /no/such.yaml not found"),
    (["benchmark", "--profile", "gpu"], None, "unknown profile 'gpu'"),
    # benchmark's flags
    (["benchmark", "--profile", "smoke", "--models", ""], None, "--models: an empty list"),
    (["benchmark", "--profile", "smoke", "--tasks", ","], None, "--tasks: an empty list"),
    (["benchmark", "--profile", "smoke", "--models", "nope"], None, "unknown model 'nope'"),
    (["benchmark", "--profile", "smoke", "--seeds", "0"], None, "--seeds: needs at least 1"),
    (["benchmark", "--profile", "smoke", "--jobs", "0"], None, "--jobs: needs at least 1"),
    (["benchmark", "--profile", "smoke", "--jobs", "many"], None, "--jobs: expected auto or an integer"),
    (["benchmark", "--profile", "smoke", "--jobs-per-gpu", "2"], None, "--jobs-per-gpu: these cells train on the CPU"),
    (["benchmark", "--profile", "smoke", "--seeds", "-1"], None, "--seeds: needs at least 1"),
    (["benchmark", "--profile", "smoke", "--set", "train.lr="], None, "train.lr has no value"),
    (["benchmark", "--profile", "smoke", "--set", "=3"], None, "is not key=value"),
    (["benchmark", "--profile", "smoke", "--set", "train..lr=3"], None, "is not key=value"),
    (["benchmark", "--profile", "smoke", "--set", "train.lr=*a"], None, "YAML aliases"),
    (["benchmark", "--profile", "smoke", "--set", "train.lr=inf"], None, "train.lr: Input should be a finite"),
    (["benchmark", "--profile", "smoke", "--shard", "3/2"], None, "needs 0 <= i < N"),
    (["benchmark", "--profile", "smoke", "--shard", "x"], None, "expected i/N"),
    (["benchmark", "--profile", "smoke", "--inits", "bogus"], None, "unknown scheme 'bogus'"),
    # stores
    (["benchmark", "--config", "{cfg}", "--tracking-uri", f"foo://user:{SECRET}@host/x"], SMOKE_ADDING,
     "unknown scheme 'foo'"),
    (["benchmark", "--config", "{cfg}", "--tracking-uri", f"http://user:{SECRET}@127.0.0.1:9"], SMOKE_ADDING,
     "credentials do not go in the URL"),
    (["benchmark", "--config", "{cfg}", "--tracking-uri", f"http://127.0.0.1:9/?password={SECRET}"], SMOKE_ADDING,
     "unreachable"),
    (["benchmark", "--config", "{cfg}", "--tracking-uri", f"postgresql://u:{SECRET}@127.0.0.1:9/db"], SMOKE_ADDING,
     "cannot reach the database"),
    (["benchmark", "--config", "{cfg}", "--tracking-uri", "sqlite:////no/such/dir/m.db"], SMOKE_ADDING, "folder"),
    (["benchmark", "--config", "{cfg}", "--tracking-uri", "sqlite:///{dir}/junk/train.parquet"], SMOKE_ADDING,
     "is not an MLflow store"),
    (["benchmark", "--config", "{cfg}", "--tracking-uri", "sqlite:///{dir}/other.db"], SMOKE_ADDING,
     "not an MLflow store"),
    (["benchmark", "--config", "{cfg}", "--tracking-uri", "file:///tmp/mlruns"], SMOKE_ADDING, "needs a database"),
    # stores that would lose every result, or that cannot be written
    (["benchmark", "--profile", "smoke", "--tracking-uri", "sqlite:///"], None, "is an in-memory store"),
    (["run", "--profile", "smoke", "--model", "rnn", "--task", "adding", "--tracking-uri", "sqlite://"], None,
     "is an in-memory store"),
    (["benchmark", "--profile", "smoke", "--tracking-uri", "sqlite:///:memory:", "--dry-run"], None, "in-memory store"),
    (["report", "--tracking-uri", "sqlite:///:memory:"], None, "is an in-memory store"),
    (["benchmark", "--profile", "smoke", "--tracking-uri", "sqlite:///{dir}"], None, "is a folder, not a database"),
    (["benchmark", "--profile", "smoke", "--tracking-uri", "sqlite:///{dir}/ro/mlflow.db"], None,
     "ro/mlflow.db is "),
    (["run", "--profile", "smoke", "--model", "rnn", "--task", "adding", "--tracking-uri", "sqlite:///{dir}/ro/new.db"],
     None, "pick a folder you can write"),
    (["benchmark", "--profile", "smoke", "--tracking-uri", "sqlite:///{dir}/arts/mlflow.db"], None,
     "the artifacts of rnnbench-smoke: "),
    (["report", "--profile", "smoke", "--out", "{dir}/ro/report"], None, "--out: "),
    (["tune", "--profile", "smoke", "--model", "lstm", "--task", "adding", "--storage", "{dir}/ro/j.log"], None,
     "--storage: "),
    (["benchmark", "--config", "{dir}"], None, "is a folder; name one YAML file"),
    # sizes no memory here holds, refused before any run exists
    (["benchmark", "--profile", "smoke", "--set", "model.hidden_size=100000000"], None, "model.hidden_size=100000000"),
    (["run", "--profile", "smoke", "--model", "rnn", "--task", "copy", "--set", "task.seq_len=1000000000"], None,
     "needs at least"),
    (["benchmark", "--profile", "smoke", "--set", "train.batch_size=1000000000"], None, "GB of RAM on this machine"),
    (["benchmark", "--profile", "smoke", "--set", "model.hidden_size=1000000000000000000000000000000"], None,
     "needs at least"),
    (["tune", "--profile", "smoke", "--model", "lstm", "--task", "adding", "--set", "model.hidden_size=100000000"],
     None, "needs at least"),
    # run
    (["run", "--profile", "smoke", "--seed", "-1"], None, "--seed: needs at least 0"),
    (["run", "--profile", "smoke", "--seed", "two"], None, "--seed: expected an integer"),
    (["run", "--profile", "smoke"], None, "run trains one cell but this config has 16"),
    (["run", "--profile", "smoke", "--model", "nope", "--task", "adding"], None, "unknown model 'nope'"),
    # tune
    (["tune", "--profile", "smoke", "--trials", "0"], None, "--trials: needs at least 1"),
    (["tune", "--profile", "smoke", "--workers", "0"], None, "--workers: needs at least 1"),
    (["tune", "--profile", "smoke", "--timeout", "nan"], None, "--timeout: expected a finite number"),
    (["tune", "--profile", "smoke", "--timeout", "-1"], None, "--timeout: expected a finite number"),
    (["tune", "--profile", "smoke", "--pruner", "foo"], None, "invalid choice: 'foo'"),
    (["tune", "--profile", "smoke", "--model", "lstm", "--task", "adding", "--storage", f"redis://u:{SECRET}@h/0"],
     None, "expected a path"),
    (["tune", "--profile", "smoke", "--model", "lstm", "--task", "adding", "--storage", "/no/such/dir/j.log"],
     None, "folder of /no/such/dir/j.log"),
    (["tune", "--profile", "smoke", "--model", "lstm", "--task", "adding", "--storage",
      f"postgresql://u:{SECRET}@127.0.0.1:9/x"], None, "cannot open"),
    (["tune", "--profile", "smoke", "--model", "lstm", "--task", "adding", "--space", "/no/space.yaml"], None,
     "--space: /no/space.yaml not found"),
    (["tune", "--profile", "smoke", "--model", "lstm", "--task", "adding", "--space", "{cfg}"], BOMB, "YAML aliases"),
    (["tune", "--profile", "smoke", "--study", "mine"], None, "--study: names one study"),
    # horizon
    (["horizon", "--profile", "smoke", "--task", "copy", "--lengths", "0,-5"], None, "--lengths: needs at least 1"),
    (["horizon", "--profile", "smoke", "--task", "copy", "--lengths", "a,b"], None, "--lengths: expected an integer"),
    (["horizon", "--profile", "smoke", "--task", "copy", "--lengths", ","], None, "--lengths: an empty list"),
    (["horizon", "--profile", "smoke", "--task", "mnist_rows"], None, "mnist_rows has a fixed length"),
    (["horizon", "--profile", "smoke", "--lengths", "5,10"], None, "--task: --lengths is one task's ladder"),
    (["horizon", "--profile", "smoke", "--task", "nope"], None, "tasks.nope: unknown task"),
    (["horizon", "--profile", "smoke", "--task", "copy", "--budget-minutes", "0"], None, "--budget-minutes"),
    (["horizon", "--profile", "smoke", "--task", "copy", "--seeds", "0"], None, "--seeds: needs at least 1"),
    # gradflow
    (["gradflow", "--profile", "smoke", "--task", "nope"], None, "tasks.nope: unknown task"),
    (["gradflow", "--profile", "smoke", "--task", "adding", "--models", "lstm", "--checkpoint", "0" * 32], None,
     "run 00000000000000000000000000000000 not found"),
    # speed
    (["speed", "--repeats", "0"], None, "--repeats: needs at least 1"),
    (["speed", "--steps", "0"], None, "--steps: needs at least 1"),
    (["speed", "--device", "tpu"], None, "invalid choice: 'tpu'"),
    (["speed", "--device", "cuda"], None, "no CUDA device"),
    # report
    (["report", "--tracking-uri", "sqlite:///{dir}/empty.db"], None, "is empty"),
    (["report", "--experiment", "nope"], None, "unknown experiment 'nope'"),
    (["report", "--tracking-uri", f"foo://u:{SECRET}@h"], None, "unknown scheme 'foo'"),
    # slurm
    (["slurm", "benchmark", "--array", "0"], None, "--array: needs at least 1"),
    (["slurm", "benchmark", "--time", "4h"], None, "--time: expected [D-]HH:MM:SS"),
    (["slurm", "benchmark", "--gpus-per-job", "-1"], None, "--gpus-per-job: needs at least 0"),
    (["slurm", "benchmark"], None, "the jobs need a shared tracking store"),
    # server, ui, reproduce
    (["server", "--backend", "notauri"], None, "--backend: expected a database URI"),
    (["server", "--port", "70000"], None, "--port: a port is 1 to 65535"),
    (["server", "--workers", "0"], None, "--workers: needs at least 1"),
    (["ui", "--tracking-uri", "http://127.0.0.1:5000"], None, "is a server already"),
    (["reproduce", "nope"], None, "unknown reproduction 'nope'"),
    (["reproduce", "keras-seed", "--seeds", "0"], None, "--seeds: needs at least 1"),
    (["reproduce", "keras-seed", "--epochs", "0"], None, "--epochs: needs at least 1"),
    (["bench"], None, "invalid choice: 'bench'"),
]


def fingerprint(db) -> str:
    """Everything in the store: experiments, runs and their statuses, params, tags and metrics."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()


def files(folder) -> set:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """A store with one finished run, and the odd files the cases point at: a copy of it on a read-only disk
    (ro/), and one whose artifacts are there (arts/)."""
    root = tmp_path_factory.mktemp("bad")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        assert main(["run", "--profile", "smoke", "--model", "rnn", "--task", "adding",
                     "--tracking-uri", f"sqlite:///{root}/mlflow.db"]) == 0
    (root / "junk").mkdir()
    (root / "junk" / "train.parquet").write_bytes(b"not parquet at all" * 10)
    (root / "junk" / "test.parquet").write_bytes(b"not parquet either" * 10)
    (root / "idx").mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (root / "idx" / f"{name}.gz").write_bytes(gzip.compress(b"PK\x03\x04 a zip, not an IDX file"))
    sqlite3.connect(root / "other.db").execute("CREATE TABLE t (x)").connection.close()
    (root / "empty.db").touch()
    for folder in ("ro", "arts"):
        (root / folder).mkdir()
        shutil.copy(root / "mlflow.db", root / folder / "mlflow.db")
    with sqlite3.connect(root / "arts" / "mlflow.db") as conn:
        conn.execute("UPDATE experiments SET artifact_location = ?", ((root / "ro" / "artifacts").as_uri(),))
    with read_only(root / "ro"):
        yield root


def test_the_table_has_sixty_cases_over_every_subcommand():
    assert len(CASES) >= 60
    assert {c[0][0] for c in CASES} >= {"run", "benchmark", "tune", "horizon", "gradflow", "speed", "report", "slurm",
                                        "server", "reproduce"}


@pytest.mark.parametrize("argv,config,expected", CASES, ids=[f"{i:02d}-{c[0][0]}" for i, c in enumerate(CASES)])
def test_a_bad_input_is_one_line_exit_2_and_writes_nothing(filled, tmp_path, monkeypatch, capsys, argv, config, expected):
    monkeypatch.chdir(filled)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{filled}/mlflow.db")
    cfg = tmp_path / "exp.yaml"
    if config is not None:
        cfg.write_bytes(config if isinstance(config, bytes) else config.replace("{dir}", str(filled)).encode())
    argv = [a.replace("{cfg}", str(cfg)).replace("{dir}", str(filled)) for a in argv]
    before, listing = fingerprint(filled / "mlflow.db"), files(filled)
    started = time.monotonic()
    code = main(argv)
    elapsed = time.monotonic() - started
    out, err = capsys.readouterr()
    unchanged = fingerprint(filled / "mlflow.db") == before and files(filled) == listing
    if os.environ.get("RNNBENCH_CASES_TABLE"):  # a file: append this case's row (the table in a closing note)
        with open(os.environ["RNNBENCH_CASES_TABLE"], "a") as table:
            table.write(f"| `{' '.join(argv).replace(str(filled), '.').replace(str(tmp_path), '.')}` | {code} | "
                        f"{err.count(chr(10))} | {'yes' if unchanged else 'NO'} | {elapsed:.1f} | "
                        f"{err.strip().removeprefix('rnnbench: error: ')[:110].replace('|', '/')} |\n")
    assert code == 2, (code, err[-500:])
    assert expected in err and err.startswith("rnnbench: error: ") and err.count("\n") <= 2, err
    assert "Traceback" not in out + err and SECRET not in out + err
    assert unchanged
    assert (filled / "empty.db").stat().st_size == 0  # a report never creates MLflow's tables


# Faults mid-run: one line naming the cause, exit 1, the run it hit FAILED, finished cells kept, no traceback.
FOUR_CELLS = "models: [rnn]\nseeds: [0, 1, 2, 3]\nrecipe: {pinned: true}\ntrain: {epochs: 1, steps_per_epoch: 2, batch_size: 8, n_val: 16, " \
             "n_test: 16, system_metrics: false}\ntasks: {adding: {seq_len: 5}}\n"


def test_a_full_disk_stops_the_matrix_at_the_first_cell_it_hits(tmp_path, monkeypatch, capsys):
    from mlflow import MlflowClient

    from tests.disks import small_disk

    cfg, uri = tmp_path / "four.yaml", f"sqlite:///{tmp_path}/mlflow.db"
    cfg.write_text(FOUR_CELLS)
    monkeypatch.chdir(tmp_path)
    with small_disk(tmp_path / "mlartifacts", 600, monkeypatch):  # a cell's model and code: ~250 KB
        code = main(["benchmark", "--config", str(cfg), "--tracking-uri", uri])
    out, err = capsys.readouterr()
    said = [line for line in err.splitlines() if line.startswith("rnnbench: error: ")]
    assert code == 1 and len(said) == 1 and "Traceback" not in out + err, err[-2000:]
    assert "disk full writing " in said[0] and "finished cells are kept" in said[0] and "FAILED" in said[0]
    runs = MlflowClient(uri).search_runs([MlflowClient(uri).get_experiment_by_name("rnnbench-four").experiment_id])
    statuses = sorted(r.info.status for r in runs)
    assert statuses.count("FAILED") == 1 and 1 <= statuses.count("FINISHED") <= 2 and len(runs) < 4, statuses


@pytest.mark.slow
def test_two_benchmarks_starting_together_on_a_new_sqlite_store_both_finish(tmp_path):
    import subprocess
    import sys

    uri = f"sqlite:///{tmp_path}/new.db"
    procs = [subprocess.Popen([sys.executable, "-m", "suite", "run", "--profile", "smoke", "--model", model, "--task",
                               "adding", "--tracking-uri", uri], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for model in ("rnn", "lstm")]
    done = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert [code for code, _ in done] == [0, 0] and not any("Traceback" in err for _, err in done), done
