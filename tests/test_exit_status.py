"""Exit status tells the truth: 0 only when everything asked for finished, 1 when some cells or trials failed (after
the rest, each failure one line), 2 for bad input (tests/test_bad_input.py), 130 on interrupt (test_benchmark)."""
import pytest

from suite.cli import main

SMOKE = ["--profile", "smoke"]
COMMANDS = {  # command -> (its argv over two models, the printed line of a failure)
    "run": (["run", *SMOKE, "--model", "lstm", "--task", "adding"], "FAILED: RuntimeError: broken"),
    "benchmark": (["benchmark", *SMOKE, "--models", "lstm,gru", "--tasks", "adding"], "FAILED lstm · adding"),
    "tune": (["tune", *SMOKE, "--model", "lstm", "--task", "adding", "--trials", "2"], "FAILED smoke-lstm-adding-T20"),
    "horizon": (["horizon", *SMOKE, "--task", "adding", "--models", "lstm,gru", "--lengths", "5", "--budget-steps", "8"],
                "FAILED lstm · adding T=5"),
    "gradflow": (["gradflow", *SMOKE, "--task", "adding", "--models", "lstm,gru"], "FAILED lstm · adding"),
    "speed": (["speed", *SMOKE, "--tasks", "adding", "--models", "lstm,gru", "--repeats", "1", "--steps", "2"],
              "FAILED lstm · adding"),
}


def breaking(monkeypatch, models):
    """Make every cell of `models` crash when it is built (training, tuning trials and speed alike)."""
    import suite.studies.speed
    import suite.train

    real = suite.train.assemble

    def build(cell, device):
        if cell.model in models:
            raise RuntimeError("broken")
        return real(cell, device)

    monkeypatch.setattr(suite.train, "assemble", build)
    monkeypatch.setattr(suite.studies.speed, "assemble", build)


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("broken", [("lstm",), ("lstm", "gru")], ids=["one-fails", "all-fail"])
def test_failures_exit_1_after_the_rest_with_one_line_each(in_store, monkeypatch, capsys, command, broken):
    argv, line = COMMANDS[command]
    if command in ("run", "tune") and broken == ("lstm",):
        broken = ("lstm", "gru")  # one cell, or one model's trials: all of it fails
    breaking(monkeypatch, broken)
    code = main([*argv, "--tracking-uri", in_store, "--experiment", f"t-exit-{command}-{len(broken)}", "--force"]
                if command not in ("tune", "speed", "gradflow") else
                [*argv, "--tracking-uri", in_store, "--experiment", f"t-exit-{command}-{len(broken)}"])
    out, err = capsys.readouterr()
    assert code == 1, (code, err[-1500:])
    assert line in out + err and "Traceback" not in out + err
    if len(broken) == 1 and command not in ("run", "tune"):  # the other model finished and is reported
        assert "gru" in out and ("gru · adding" in out or "gru " in out)


def test_everything_finished_is_exit_0(in_store):
    assert main(["horizon", *SMOKE, "--task", "adding", "--models", "lstm", "--lengths", "5", "--budget-steps", "8",
                 "--tracking-uri", in_store, "--experiment", "t-exit-ok"]) == 0
