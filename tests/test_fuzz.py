"""Property-based fuzzing (hypothesis) of the config schema and the command line: every input either loads (or
reaches the point where work would start) or is one line with exit 2; never a traceback, a hang or a write."""
import dataclasses
import os

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suite.cli import main
from suite.config import TrainConfig
from suite.errors import UserError
from suite.experiment import TOP_KEYS, load_experiment
from suite.models import MODELS
from tasks import TASKS

EXAMPLES = int(os.environ.get("RNNBENCH_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.integers(), st.floats(allow_subnormal=False),  # flush_denormal is on
                    st.text(max_size=12), st.sampled_from(["auto", "cpu", "torch", "keras", "rnn", "copy", "1e-3"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                             max_size=4), max_leaves=12)
model_keys = sorted({f.name for m in MODELS.values() for f in dataclasses.fields(m.Config)})
train_keys = [f.name for f in dataclasses.fields(TrainConfig)]
task_keys = sorted({f for t in TASKS.values() for f in t.Config.__dataclass_fields__} | {"model", "train"})


def section(keys):
    return st.dictionaries(st.sampled_from(keys) | st.text(max_size=8), values, max_size=4)


configs = st.fixed_dictionaries({}, optional={
    "models": st.lists(st.sampled_from([*MODELS, "nope"]), max_size=3) | values,
    "seeds": st.lists(st.integers(-3, 3) | st.sampled_from([1_000_003]), max_size=3) | values,
    "model": section(model_keys), "train": section(train_keys),
    "tasks": st.dictionaries(st.sampled_from([*TASKS, "nope"]), section(task_keys) | st.none(), max_size=3) | values,
    "tune": section(["trials", "pruner", "startup_trials", "warmup_epochs", "sampler_seed"]),
    "horizon": section(["copy", "adding", "seeds", "budget_steps", "min_share", "mnist_rows"]),
    "stores": section(["tracking_uri", "optuna_storage"]),
}) | st.dictionaries(st.sampled_from(TOP_KEYS) | st.text(max_size=6), values, max_size=3)


@FUZZ
@given(config=configs, sets=st.lists(st.text(max_size=20), max_size=3))
def test_any_config_loads_or_is_one_line(tmp_path_factory, config, sets):
    path = tmp_path_factory.mktemp("fuzz") / "exp.yaml"
    try:
        path.write_text(yaml.safe_dump(config, allow_unicode=True))
    except yaml.YAMLError:
        return
    try:
        exp = load_experiment(config=str(path), sets=sets, announce=None)
    except UserError as e:
        assert "\n" not in str(e)
        return
    assert exp.cells  # a valid experiment has something to run


@FUZZ
@given(data=st.binary(max_size=300))
def test_any_bytes_as_a_config_load_or_are_one_line(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("bytes") / "exp.yaml"
    path.write_bytes(data)
    try:
        load_experiment(config=str(path), announce=None)
    except UserError as e:
        assert "\n" not in str(e)


@FUZZ
@given(key=st.sampled_from(["model.hidden_size", "model.num_layers", "train.batch_size", "task.seq_len",
                            "train.n_test"]), value=st.integers(1, 10**40) | st.integers(1, 10**6),
       model=st.sampled_from(sorted(MODELS)))
def test_any_size_loads_or_is_refused_in_one_line_before_any_run(key, value, model):
    try:
        load_experiment("smoke", sets=[f"{key}={value}"], models=[model], tasks=["copy"], announce=None)
    except UserError as e:
        assert "\n" not in str(e)


@FUZZ
@given(slashes=st.sampled_from(["//", "///", "////"]), path=st.sampled_from(["", ":memory:", "x.db", "{tmp}",
                                                                            "{tmp}/ro/x.db", "{tmp}/no/x.db"]),
       query=st.sampled_from(["", "?mode=memory", "?cache=shared", "?mode=memory&cache=shared"]))
def test_any_sqlite_uri_is_a_file_store_or_one_line(tmp_path_factory, slashes, path, query):
    from suite.stores import check_store

    tmp = tmp_path_factory.mktemp("uri")
    uri = f"sqlite:{slashes}{path.replace('{tmp}', str(tmp).lstrip('/'))}{query}"
    try:
        check_store(uri, read_only=True)
    except UserError as e:
        assert "\n" not in str(e)
        return
    assert path not in ("", ":memory:") and "mode=memory" not in query, uri  # an in-memory store is never used


FLAGS = {  # each subcommand's flags, with values drawn from the awkward ones below
    "run": ["--model", "--task", "--seed", "--set", "--profile"],
    "benchmark": ["--models", "--tasks", "--seeds", "--shard", "--inits", "--set", "--profile"],
    "tune": ["--model", "--task", "--trials", "--timeout", "--workers", "--pruner", "--study"],
    "horizon": ["--task", "--models", "--lengths", "--seeds", "--budget-steps", "--budget-minutes"],
    "gradflow": ["--task", "--models"], "speed": ["--models", "--tasks", "--repeats", "--steps", "--device"],
    "report": ["--experiment", "--profile", "--mlflow-ui"],
    "slurm": ["--array", "--gpus-per-job", "--cpus-per-task", "--time", "--extra"],
    "server": ["--backend", "--port", "--workers", "--host"], "reproduce": ["--seeds", "--epochs"],
}
awkward = st.sampled_from(["", ",", "0", "-1", "1", "3", "nan", "inf", "1e9", "lstm", "copy", "adding", "rnn,gru",
                           "0/2", "2/2", "x", "train.lr=", "train.lr=0.1", "=", "smoke", "gpu", "04:00:00", "é"]) \
    | st.text(max_size=8)


class Reached(Exception):
    """The command got past every check to where it would start work."""


@FUZZ
@given(command=st.sampled_from(sorted(FLAGS)), data=st.data())
def test_any_command_line_starts_or_is_one_line(tmp_path_factory, monkeypatch_session, capsys, command, data):
    pairs = data.draw(st.lists(st.tuples(st.sampled_from(FLAGS[command] + ["--nope"]), awkward), max_size=4))
    argv = [command, *(["keras-seed"] if command == "reproduce" else []), *(["benchmark"] if command == "slurm" else []),
            *(["--task", "copy"] if command in ("horizon", "gradflow") else []), "--profile", "smoke"]
    argv = [a for a in argv if not (command in ("speed", "reproduce", "server") and a in ("--profile", "smoke"))]
    for flag, value in pairs:
        argv += [flag, value]
    folder = tmp_path_factory.mktemp("cwd")
    monkeypatch_session.chdir(folder)
    capsys.readouterr()  # what an earlier example printed is not this one's
    try:
        code = main(argv)
    except Reached:
        return
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (argv, code, err)
    assert not any(folder.iterdir()), argv  # nothing written


@pytest.fixture(scope="module")
def monkeypatch_session():
    """Stop every command where it would open the store or start a process."""
    import suite.benchmark
    import suite.runner
    import suite.server

    def reached(*args, **kwargs):
        raise Reached

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(suite.runner, "open_store", reached)
        mp.setattr(suite.benchmark, "store_for", reached)
        mp.setattr(suite.server.os, "execvp", reached)
        mp.setattr("suite.report.site.write_site", reached)
        mp.setenv("MLFLOW_TRACKING_URI", "sqlite:////no/such/folder/mlflow.db")
        yield mp
