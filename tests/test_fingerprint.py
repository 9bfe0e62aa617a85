"""Cached results know their code: editing a model's file trains that model's cells again and nothing else; editing
a file outside the training path, a comment or a docstring trains nothing; --reuse-stale keeps old results."""
import shutil
from pathlib import Path

import pytest

from suite.fingerprint import CORE, code_fingerprint
from tests.test_extension import rnnbench, runs

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["benchmark", "--profile", "smoke", "--models", "rnn,attn_rnn", "--tasks", "adding"]


def test_the_fingerprint_covers_the_model_the_task_and_the_core():
    assert code_fingerprint("rnn", "adding") == code_fingerprint("lstm", "adding")  # one file: fused.py
    assert code_fingerprint("attn_rnn", "adding") != code_fingerprint("gru", "adding")  # attn_rnn.py on top
    assert code_fingerprint("rnn", "adding") != code_fingerprint("rnn", "copy")
    assert "suite/train.py" in CORE and "suite/cli.py" not in CORE


@pytest.mark.slow
def test_editing_a_model_reruns_its_cells_only(tmp_path_factory):
    root = tmp_path_factory.mktemp("fingerprint")
    for folder in ("suite", "tasks", "configs"):
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))

    def edit(path, old, new):
        text = (root / path).read_text()
        assert old in text
        (root / path).write_text(text.replace(old, new, 1))

    assert "2 trained, 0 skipped" in rnnbench(root, *ARGS)
    first = {r.data.tags["model"]: r.data.tags["code_fingerprint"] for r in runs(root, "rnnbench-smoke")}
    assert first["rnn"] and first["attn_rnn"] and first["rnn"] != first["attn_rnn"]

    edit("suite/models/attn_rnn.py", "        return h + self.out(", "        h = h * 1.0\n        return h + self.out(")
    out = rnnbench(root, *ARGS)
    assert "1 trained, 1 skipped" in out and "attn_rnn · adding T=20 · seed 0: test_mse" in out
    assert "its code changed since run" in out

    edit("suite/cli.py", "def cmd_list(a) -> int:", "def cmd_list(a) -> int:  # an unrelated edit\n    a = a")
    edit("suite/models/fused.py", '"""A stack of recurrent layers', '"""A stack (edited docstring) of recurrent layers')
    edit("suite/train.py", "# Denormals slow", "# a comment edit: Denormals slow")
    assert "0 trained, 2 skipped" in rnnbench(root, *ARGS)

    edit("suite/models/attn_rnn.py", "        h = h * 1.0\n", "        h = h * 2.0 / 2.0\n")
    kept = rnnbench(root, *ARGS, "--reuse-stale")
    assert "0 trained, 2 skipped" in kept and "kept from older code (--reuse-stale)" in kept
    assert all(r.data.tags.get("code_fingerprint") for r in runs(root, "rnnbench-smoke"))

