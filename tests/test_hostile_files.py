"""Files rnnbench is handed or reads back, made hostile: a refused admin password, a run's config.yaml, a task.path
that is a symlink loop or is set beside another source, local copies with float labels or too few images, and
the dry run's look at the data. Each is one line naming the field, exit 2, and nothing written; real files in
the layout the loaders read (and a real server where one is needed)."""
import gzip
import hashlib
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow import MlflowClient

from suite.cli import main
from suite.experiment import load_experiment

ROOT = Path(__file__).resolve().parent.parent
SMALL = ("models: [rnn]\nseeds: [0]\nrecipe: {pinned: true}\nmodel: {hidden_size: 8}\ntrain: {epochs: 1, "
         "steps_per_epoch: 2, batch_size: 8, n_val: 16, n_test: 16, system_metrics: false}\n")


def files(folder: Path) -> set:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def refused(code: int, err: str, *words: str):
    """Exit 2 and one line on stderr holding `words`, no traceback."""
    assert code == 2, (code, err[-2000:])
    assert err.startswith("rnnbench: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and all(w in err for w in words), err


def cli(tmp_path: Path, capsys, *argv: str, config: str | None = None) -> tuple[int, str, set]:
    """`rnnbench ARGV` in tmp_path/work (with `config` as exp.yaml there): exit code, stderr, and what it wrote."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    if config is not None:
        (work / "exp.yaml").write_text(config)
    before = files(work)
    capsys.readouterr()  # what writing the test's data printed
    old = os.getcwd()
    os.chdir(work)
    try:
        code = main([*argv, "--tracking-uri", f"sqlite:///{work}/mlflow.db"])
    finally:
        os.chdir(old)
    return code, capsys.readouterr().err, files(work) - before


def rnnbench(*argv: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "RNNBENCH_"))}
    clean["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-m", "suite", *argv], cwd=cwd, env={**clean, **env}, capture_output=True,
                          text=True, timeout=300)


# 1. The admin password MLflow refuses: refused by us first, before the store, the auth database, the artifact
# folder or a secret exist; and the auth config lives in the server's own folder, not one temp folder a start.

def test_mlflows_old_default_admin_password_is_refused_before_anything_is_written(tmp_path):
    temp = tmp_path / "temp"
    temp.mkdir()
    done = rnnbench("server", "--auth", "--port", "9", cwd=tmp_path,
                    env={"RNNBENCH_ADMIN_PASSWORD": "password1234", "TMPDIR": str(temp)})
    refused(done.returncode, done.stderr, "admin password", "RNNBENCH_ADMIN_PASSWORD")
    assert files(tmp_path) == {"temp"} and not done.stdout  # no store, auth db, artifacts, secret or auth.ini


@pytest.mark.filterwarnings("ignore::starlette.exceptions.StarletteDeprecationWarning")
def test_the_refused_password_is_mlflows_own():
    from mlflow.server.auth import _LEGACY_DEFAULT_ADMIN_PASSWORD

    from suite.server import REFUSED_PASSWORD

    assert REFUSED_PASSWORD == _LEGACY_DEFAULT_ADMIN_PASSWORD


def test_the_auth_config_is_one_private_file_in_the_servers_folder(tmp_path, monkeypatch):
    from suite.server import auth_environment

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setenv("RNNBENCH_ADMIN_PASSWORD", "a-long-enough-password")
    state = tmp_path / "server"
    state.mkdir()
    first = auth_environment(None, "sqlite:///mlflow-auth.db", state / "mlartifacts")
    again = auth_environment(None, "sqlite:///mlflow-auth.db", state / "mlartifacts")
    assert first == again and Path(first["MLFLOW_AUTH_CONFIG_PATH"]).parent == state
    assert files(state) == {".mlflow-auth.ini", ".mlflow-server-secret"} and files(temp) == set()
    assert {(state / f).stat().st_mode & 0o777 for f in files(state)} == {0o600}


# 2. `server users add`: no warning from the web stack MLflow's server package imports.

def test_the_auth_client_imports_without_the_web_stacks_deprecation_warning(tmp_path):
    code = "from suite.server import auth_client; auth_client('http://127.0.0.1:9')"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    import warnings

    from starlette.exceptions import StarletteDeprecationWarning

    from suite.server import auth_client

    with warnings.catch_warnings(record=True) as seen:  # the filter is not left behind once the client is made
        warnings.simplefilter("always")
        auth_client("http://127.0.0.1:9")
        warnings.warn_explicit("later", StarletteDeprecationWarning, "fastapi_app.py", 1,
                               module="mlflow.server.fastapi_app")
    assert [str(w.message) for w in seen] == ["later"]


@pytest.mark.slow
def test_users_add_prints_one_line_and_no_warning(tmp_path):
    from tests.servers import MlflowServer

    admin = "admin-passw0rd-long"
    server = MlflowServer(f"sqlite:///{tmp_path}/m.db", tmp_path / "artifacts", tmp_path / "server.log",
                          args=["--auth"], env={"RNNBENCH_ADMIN_PASSWORD": admin})
    try:
        done = rnnbench("server", "users", "add", "ed", "--permission", "EDIT", "--tracking-uri", server.url,
                        cwd=tmp_path, env={"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": admin,
                                           "RNNBENCH_USER_PASSWORD": "editor-passw0rd"})
    finally:
        server.stop()
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.count("\n") == 1 and "user ed: EDIT" in done.stdout


# 3. gradflow --checkpoint reads a run's config.yaml as a profile is read.

@pytest.fixture(scope="module")
def source_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    return root, f"sqlite:///{root}/mlflow.db"


def fingerprint(db: Path) -> str:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()


def logged(uri: str, config) -> str:
    """A finished run whose config.yaml holds `config`: the id."""
    client = MlflowClient(uri)
    found = client.get_experiment_by_name("trained")
    run = client.create_run(found.experiment_id if found else client.create_experiment("trained"))
    client.log_text(run.info.run_id, config if isinstance(config, str) else yaml.safe_dump(config), "config.yaml")
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def resolved(changes: dict) -> dict:
    """The config.yaml an lstm cell on adding logs (Cell.resolved()), with changes at paths like train.lr."""
    out = load_experiment("smoke", models=["lstm"], tasks=["adding"], announce=None).cells[0].resolved()
    for key, value in changes.items():
        head, _, name = key.partition(".")
        (out[head] if name else out).__setitem__(name or head, value)
    return out


@pytest.mark.parametrize("config,words", [
    ({"seed": 1.5}, "seed: expected a non-negative integer (got 1.5)"),
    ({"seed": "abc"}, "seed: expected a non-negative integer (got 'abc')"),
    ({"train.lr": "fast"}, "train.lr: Input should be a valid number"),
    ({"task.name": "nope"}, "task.name: unknown task 'nope'"),
    ({"model.hidden_size": -3}, "model.hidden_size: Input should be greater than or equal to 1"),
    ("seed: 0\n", "expected a run's settings"),
    ("- a\n- list\n", "expected a run's settings"),
    ("a: &a [x]\nb: *a\n", "YAML aliases"),
], ids=["float-seed", "text-seed", "text-lr", "unknown-task", "negative-size", "sections-missing", "a-list", "alias"])
def test_a_checkpoints_config_is_checked_as_a_profile_is(source_store, tmp_path, monkeypatch, capsys, config, words):
    root, uri = source_store
    run_id = logged(uri, config if isinstance(config, str) else resolved(config))
    before, listing = fingerprint(root / "mlflow.db"), files(root)
    monkeypatch.chdir(tmp_path)
    code = main(["gradflow", "--profile", "smoke", "--task", "adding", "--models", "lstm", "--checkpoint", run_id,
                 "--tracking-uri", uri])
    refused(code, capsys.readouterr().err, f"--checkpoint: run {run_id}'s config.yaml: ", words)
    assert fingerprint(root / "mlflow.db") == before and files(root) == listing and files(tmp_path) == set()


# 4.-6. task.path: a symlink loop, set beside another source; local copies with float labels or too few images.

def symlink_loop(tmp_path: Path) -> Path:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    return loop


@pytest.mark.parametrize("task", ["mnist_rows", "scifar", "lra_text"])
def test_a_task_path_that_is_a_symlink_loop_is_one_line(tmp_path, capsys, task):
    loop = symlink_loop(tmp_path)
    code, err, written = cli(tmp_path, capsys, "run", "--config", "exp.yaml",
                             config=SMALL + f"tasks: {{{task}: {{path: '{loop}'}}}}\n")
    refused(code, err, f"task.path: {loop} cannot be resolved", "Symlink loop")
    assert written == set()


@pytest.mark.parametrize("task,source", [("mnist_rows", "mnist-5k"), ("mnist_pixels", "hf"), ("scifar", "hf"),
                                         ("lra_text", "hf")])
def test_a_path_beside_another_source_is_refused_where_the_settings_are_checked(tmp_path, capsys, task, source):
    code, err, written = cli(tmp_path, capsys, "run", "--config", "exp.yaml",
                             config=SMALL + f"tasks: {{{task}: {{source: {source}, path: /some/copy}}}}\n")
    refused(code, err, f"tasks.{task}.path: read only when task.source is local or auto (it is {source}); set "
            "task.source=local or drop task.path")
    assert written == set()


def test_a_path_set_on_the_command_line_beside_mnist_5k_is_refused(tmp_path, capsys):
    code, err, written = cli(tmp_path, capsys, "run", "--profile", "smoke", "--model", "rnn", "--task", "mnist_rows",
                             "--set", "tasks.mnist_rows.path=/some/copy")
    refused(code, err, "tasks.mnist_rows.path: read only when task.source is local or auto (it is mnist-5k)")
    assert written == set()


def write_cifar(root: Path, labels: dict) -> Path:
    """uoft-cs/cifar10's layout (plain_text/<split>-00000-of-00001.parquet, img as PNG) with the given labels."""
    import datasets
    from PIL import Image

    folder = root / "plain_text"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, y in labels.items():
        images = rng.integers(0, 256, (len(y), 32, 32, 3), dtype=np.uint8)
        features = datasets.Features({"img": datasets.Image(), "label": datasets.Value(str(np.asarray(y).dtype))})
        datasets.Dataset.from_dict({"img": [Image.fromarray(i) for i in images], "label": list(y)},
                                   features=features).to_parquet(str(folder / f"{split}-00000-of-00001.parquet"))
    return root


def write_mnist_parquet(root: Path, sizes: dict) -> Path:
    """ylecun/mnist's layout (<split>-00000-of-00001.parquet: image as PNG, label a ClassLabel)."""
    import datasets
    from PIL import Image

    root.mkdir(parents=True)
    rng = np.random.default_rng(1)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list("0123456789"))})
    for split, n in sizes.items():
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        datasets.Dataset.from_dict({"image": [Image.fromarray(i) for i in images],
                                    "label": rng.integers(0, 10, n).tolist()},
                                   features=features).to_parquet(str(root / f"{split}-00000-of-00001.parquet"))
    return root


def write_idx(root: Path, counts: dict) -> Path:
    """The four MNIST IDX files, gzipped, with (images, labels) counts per file prefix."""
    root.mkdir(parents=True)
    for prefix, (n_images, n_labels) in counts.items():
        for kind, array in (("images-idx3", np.zeros((n_images, 28, 28))), ("labels-idx1", np.zeros(n_labels))):
            header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
            (root / f"{prefix}-{kind}-ubyte.gz").write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))
    return root


@pytest.mark.parametrize("make,task,words", [
    (lambda r: write_cifar(r, {"train": np.linspace(0, 9.9, 20), "test": np.linspace(0, 9.9, 6)}), "scifar",
     "task.path: CIFAR-10 train labels are float"),
    (lambda r: write_cifar(r, {"train": np.arange(20) % 11, "test": np.arange(6)}), "scifar",
     "task.path: CIFAR-10 train labels outside 0-9 (found 0..10)"),
    (lambda r: write_mnist_parquet(r, {"train": 100, "test": 30}), "mnist_rows",
     "task.path: 5,000 validation images leave none of the 100 training images; point it at the whole of MNIST"),
    (lambda r: write_idx(r, {"train": (5_010, 5_009), "t10k": (10, 10)}), "mnist_pixels",
     "task.path: MNIST train has 5,010 images and 5,009 labels"),
], ids=["cifar-float-labels", "cifar-label-10", "mnist-100-images", "mnist-idx-counts"])
def test_a_local_copy_the_task_cannot_train_on_is_refused_before_any_run(tmp_path, capsys, make, task, words):
    copy = make(tmp_path / "copy")
    settings = "{path: '%s', n_val: 4}" % copy if task == "scifar" else "{path: '%s'}" % copy
    code, err, written = cli(tmp_path, capsys, "run", "--config", "exp.yaml",
                             config=SMALL + f"tasks: {{{task}: {settings}}}\n")
    refused(code, err, words)
    assert written == set()


# 7. The dry run checks the data's paths and layout as the run does, without reading the data.

@pytest.mark.parametrize("settings,words", [
    ("{mnist_rows: {path: /no/such/mnist}}", "task.path: /no/such/mnist does not exist"),
    ("{mnist_rows: {source: local}}", "task.path: source 'local' needs the folder holding MNIST"),
    ("{scifar: {path: '{empty}'}}", "holds no train and test parquet files"),
    ("{lra_text: {path: '{loop}'}}", "cannot be resolved"),
    ("{mnist_pixels: {path: '{empty}'}}", "holds neither train/test parquet files nor the four MNIST IDX files"),
], ids=["missing", "local-without-path", "empty-folder", "symlink-loop", "mnist-empty-folder"])
def test_the_dry_run_refuses_a_data_path_the_run_would_refuse(tmp_path, capsys, settings, words):
    (tmp_path / "empty").mkdir()
    settings = settings.replace("{empty}", str(tmp_path / "empty")).replace("{loop}", str(symlink_loop(tmp_path)))
    code, err, written = cli(tmp_path, capsys, "benchmark", "--config", "exp.yaml", "--dry-run",
                             config=SMALL + f"tasks: {settings}\n")
    refused(code, err, words)
    assert written == set()


def test_the_dry_run_finds_a_good_copy_without_reading_it(tmp_path, capsys, monkeypatch):
    import tasks._hub as hub

    copy = write_mnist_parquet(tmp_path / "mnist", {"train": 10, "test": 2})  # too few to train: only the run reads
    monkeypatch.setattr(hub, "read_parquet", lambda *a: pytest.fail("the dry run decoded the data"))
    code, err, written = cli(tmp_path, capsys, "benchmark", "--config", "exp.yaml", "--dry-run",
                             config=SMALL + f"tasks: {{mnist_rows: {{path: '{copy}'}}}}\n")
    assert code == 0 and "Traceback" not in err, err
    assert written == set()
