"""One scoring model: the terminal table, summary.md, leaderboard.csv, the report's pages and `rnnbench register` show
the same numbers, because they all format suite/scoring.py's boards."""
import csv
import html
import io
import re
import statistics

import pytest

from suite.cli import main
from suite.runs import Run, Setting
from suite.scoring import Stat, boards, fmt


def run(model, seed, metrics, status="FINISHED", start=0, task="adding", T=20, **tags):
    return Run(f"{model}-{seed}-{start}", "1", status, start, "", {"model": model, "task": task, "seq_len": str(T),
                                                                   "seed": str(seed), **tags}, {}, metrics)


def mse(value, **more):
    return {"test_mse": value, "test_loss": value, "test_vs_chance": value * 6, "n_params": 1000.0,
            "train_samples_per_s": 500.0, **more}


def test_a_stat_is_mean_std_interval_and_n_of_the_finite_values():
    s = Stat.of([1.0, 2.0, 3.0, float("nan"), None])
    assert (s.n, s.mean, s.std) == (3, 2.0, 1.0) and round(s.ci[0], 3) == -0.484
    assert s.text("ratio") == "2.000 ± 1.000" and s.ci_text("ratio") == "95% CI -0.484 to 4.484"
    assert Stat.of([0.5]).text("mse") == "0.5" and Stat.of([0.5]).ci is None
    assert Stat.of([]).text("mse") == "–" and Stat.of([]).n == 0


def test_rows_take_each_seeds_newest_finished_run_count_failures_and_what_was_planned_but_never_ran():
    runs = [run("lstm", 0, mse(0.30), start=1), run("lstm", 0, mse(0.10), start=2),  # the newer finished run counts
            run("lstm", 1, mse(0.20), start=3), run("lstm", 1, {}, "FAILED", start=4),  # a later failure: still 0.20
            run("gru", 0, {}, "FAILED", start=5)]
    planned = {(m, Setting("adding", 20), s) for m in ("lstm", "gru") for s in (0, 1, 2)}
    (board,) = boards(runs, planned)
    lstm, gru = board.rows
    assert (lstm.model, gru.model) == ("lstm", "gru")  # the registry's order
    assert lstm.stats["test_metric"].values == [0.10, 0.20] and lstm.missing == [2] and not lstm.failed
    assert lstm.later == {1: runs[3]}  # ... and the later failure is said
    assert gru.runs == {} and list(gru.failed) == [0] and gru.missing == [1, 2]
    assert [p["status"] for p in board.problems] == ["MISSING", "FAILED after an earlier run finished (shown)",
                                                     "FAILED", "MISSING", "MISSING"]
    assert board.verdict.winner is None and lstm.stats["test_metric"].mark == ""


def test_a_clear_winner_is_marked_in_every_column_it_wins_and_a_tie_is_a_tie():
    runs = [run("lstm", s, mse(v, train_samples_per_s=900.0 + s)) for s, v in enumerate((0.010, 0.011, 0.012))]
    runs += [run("gru", s, mse(v)) for s, v in enumerate((0.050, 0.052, 0.051))]
    runs += [run("rnn", s, mse(v, solved=1.0)) for s, v in enumerate((0.100, 0.105, 0.102))]
    (board,) = boards(runs)
    rows = {r.model: r for r in board.rows}
    assert board.verdict.winner is not None and rows["lstm"].stats["test_metric"].mark == "best"
    assert rows["lstm"].stats["test_vs_chance"].mark == "best" and rows["lstm"].stats["train_samples_per_s"].mark == "best"
    assert {r.stats["test_metric"].mark for r in (rows["gru"], rows["rnn"])} == {""}
    assert rows["rnn"].solved == (3, 3) and rows["gru"].solved is None and ("solved", "solved") in board.columns
    tie = [run(m, s, mse(v)) for m in ("lstm", "gru") for s, v in enumerate((0.010, 0.012, 0.011))]
    (board,) = boards(tie)
    assert [r.stats["test_metric"].mark for r in board.rows] == ["tied", "tied"] and "seed noise" in board.verdict.reason


def test_code_versions_are_a_warning_only_within_one_models_seeds():
    """Each model's code is its own, so two models with two fingerprints are one experiment; one model whose seeds
    ran different code is not."""
    runs = [run("lstm", s, mse(0.1), code_fingerprint="a") for s in range(2)]
    runs += [run("gru", 0, mse(0.1), code_fingerprint="b"), run("gru", 1, mse(0.1), code_fingerprint="c")]
    (board,) = boards(runs)
    assert board.mixed_code == ["gru"]


def test_a_cell_state_is_decided_in_one_place():
    """The matrix, its packed workers and the dry run all ask matrix.cell_state."""
    from types import SimpleNamespace

    from suite.experiment import load_experiment
    from suite.matrix import cell_state

    cell = load_experiment("smoke", models=["lstm"], tasks=["adding"], announce=None).cells[0]
    now, old = (cell.config_hash, cell.code_fingerprint), (cell.config_hash, "older-code")

    def found(run_id, start=0, **tags):
        return SimpleNamespace(info=SimpleNamespace(run_id=run_id, start_time=start), data=SimpleNamespace(tags=tags))

    assert cell_state(cell, {now: found("f")}).action == "finished"
    assert cell_state(cell, {now: found("f")}, force=True).action == "train"
    assert cell_state(cell, {old: found("o")}).action == "train" and cell_state(cell, {old: found("o")}).older
    assert cell_state(cell, {old: found("o")}, reuse_stale=True).run.info.run_id == "o"
    stopped = {now: found("k", checkpoint_epoch="3")}
    assert cell_state(cell, {}, stopped).action == "resume" and cell_state(cell, {}, stopped).note() == \
        "resume from epoch 3"
    assert cell_state(cell, {}, {}).note() == "to train"


@pytest.fixture(scope="module")
def agreed(store, tmp_path_factory):
    """A small benchmark (two models, 3 seeds), then its report and register, each output kept."""
    root, uri = store
    config = tmp_path_factory.mktemp("cfg") / "agree.yaml"
    config.write_text("# two models on adding, 3 seeds: the scoring test's store\nmodels: [rnn, gru]\nseeds: [0, 1, 2]\n"
                      "recipe: {pinned: true}\n"
                      "model: {hidden_size: 8}\ntrain: {epochs: 1, steps_per_epoch: 4, batch_size: 16, n_val: 32, "
                      "n_test: 64}\ntasks: {adding: {seq_len: 6}}\n")
    out = tmp_path_factory.mktemp("site")
    common = ["--tracking-uri", uri, "--experiment", "t-agree"]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        captured = io.StringIO()
        mp.setattr("sys.stdout", captured)
        assert main(["benchmark", "--config", str(config), *common]) == 0
        terminal = captured.getvalue()
        assert main(["report", *common, "--out", str(out)]) == 0
        captured = io.StringIO()
        mp.setattr("sys.stdout", captured)
        assert main(["register", *common]) == 0
        registered = captured.getvalue()
    return terminal, out, registered


def test_the_terminal_summary_csv_pages_and_register_agree_number_for_number(agreed):
    terminal, site, registered = agreed
    rows = {r["model"]: r for r in csv.DictReader(io.StringIO((site / "leaderboard.csv").read_text()))}
    summary, index = (site / "summary.md").read_text(), html.unescape((site / "index.html").read_text())
    assert set(rows) == {"rnn", "gru"}
    for model, row in rows.items():
        mean, std = float(row["test_mean"]), float(row["test_std"])
        shown = f"{fmt(mean, 'mse')} ± {fmt(std, 'mse')}"
        ratio = f"{fmt(float(row['test_vs_chance_mean']), 'ratio')} ± {fmt(float(row['test_vs_chance_std']), 'ratio')}"
        line = next(t for t in terminal.splitlines() if re.match(rf"adding\s+6\s+{model}\s", t))
        assert f"mse {shown}" in line and ratio in line and "3/3" in line  # the terminal table
        assert fmt(float(row["n_params"]), "count") in line
        board = summary[summary.index("## adding T=6"):]
        md = next(t for t in board.splitlines() if t.startswith(f"| {model} |"))
        assert shown in md and ratio in md and fmt(float(row["n_params"]), "count") in md  # summary.md
        assert shown in index and ratio in index  # the report's page
        reg = re.search(rf"rnnbench-{model}-adding-T6 v\d+: test_mse (\S+) over 3 seeds", registered)
        assert reg and float(reg.group(1)) == pytest.approx(mean, rel=5e-4)  # register: .4g of the same mean
        mark = {"best": "best", "tied for best": "≈best", "": "-"}[row["verdict"]]
        assert line.split()[-1] == mark  # the same verdict
    assert statistics.mean(float(r["test_mean"]) for r in rows.values()) > 0
    assert re.search(r"\nOverall\n.* at one shared learning rate \(0\.001\)[^\n]*\.\nNo overall verdict: every "
                     r"model scored 0 on every setting", terminal)  # smoke's budget leaves both worse than chance
    assert "## Overall" in summary  # the answer, in both: how far it holds first, then the headline
