"""A store the size a cluster makes: runs superseded by newer runs of the same cell change neither the report nor
the skip check, read on SQLite and on PostgreSQL (a tracking URI straight at the database) through the few tags
suite/lookup.py reads."""
import pytest

from suite.cli import main
from suite.studies.scale import _same_tree, multiply

pytestmark = pytest.mark.slow  # a cell trained and two reports built, on each store


def check_multiplied(uri, tmp_path, capsys):
    cell = ["--profile", "smoke", "--model", "rnn", "--task", "adding", "--tracking-uri", uri]
    assert main(["run", *cell]) == 0
    assert main(["report", "--profile", "smoke", "--tracking-uri", uri, "--out", str(tmp_path / "one")]) == 0
    assert multiply(uri, 60) == 60  # the cell's run and 59 older copies of it
    assert main(["report", "--profile", "smoke", "--tracking-uri", uri, "--out", str(tmp_path / "many")]) == 0
    assert _same_tree(tmp_path / "one", tmp_path / "many")
    capsys.readouterr()
    assert main(["run", *cell]) == 0
    assert "already finished, skipped" in capsys.readouterr().out


def test_superseded_runs_change_neither_report_nor_skip_check_on_sqlite(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    check_multiplied(f"sqlite:///{tmp_path}/mlflow.db", tmp_path, capsys)


def test_superseded_runs_change_neither_report_nor_skip_check_on_postgresql(postgres, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    check_multiplied(postgres.create("scale_test"), tmp_path, capsys)
