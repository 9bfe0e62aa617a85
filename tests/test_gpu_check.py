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
    assert all(r["precision"] == "32-true" and not r["bf16"] for r in summary["smoke"])  # no autocast on the CPU
    assert {r["task"] for r in summary["checksums"]} >= {"copy", "adding", "selective_copy", "assoc_recall"}
    assert all(r["same"] for r in summary["checksums"])
    assert summary["packing"]["jobs"] == 2 and summary["packing"]["gain"] > 0
    assert summary["speed"] and 0.5 < summary["speed"][0]["suite_vs_raw"] < 2
    assert summary["full_profile"]["cells"] > 100 and summary["full_profile"]["one_at_a_time_h"] > 0
    text = (tmp_path / "out" / "gpu_check.md").read_text()
    assert "| cell | ok | precision" in text and "Full profile:" in text
