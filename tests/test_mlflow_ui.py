"""The MLflow UI, as its users expect: the report's run links and the URLs rnnbench prints open MLflow 3's machine-learning
view (runs, metrics, parameters and the Dataset column), not its GenAI view (traces) — checked in the real UI."""
import os
import shutil

import pytest

from suite.cli import main
from tests.test_report import browse

pytestmark = pytest.mark.slow  # the real MLflow UI in a browser: `make test-all` runs these


@pytest.fixture
def chromium():
    if not shutil.which("chromium"):
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI (.ci/run installs it)")
        pytest.skip("chromium not installed (apt-get install chromium); CI runs this test")


def test_run_links_open_the_machine_learning_view(mlflow_server, chromium, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--profile", "smoke", "--model", "lstm", "--task", "adding", "--tracking-uri", mlflow_server.url,
                 "--experiment", "ui-view"]) == 0
    site = tmp_path / "site"
    assert main(["report", "--tracking-uri", mlflow_server.url, "--experiment", "ui-view", "--out", str(site)]) == 0
    index = (site / "index.html").read_text()
    link = index.split(f'href="{mlflow_server.url}/#/experiments/')[1].split('"')[0]
    _, _, run_page = browse(f"{mlflow_server.url}/#/experiments/{link}", 1400, 900,
                            expression="document.body.innerText", settle=10)
    assert "Model metrics" in run_page and "Parameters" in run_page and "model.init" in run_page, run_page[:500]
    assert "Observability" not in run_page  # the GenAI view's navigation
    experiment = link.split("/")[0]
    _, _, runs = browse(f"{mlflow_server.url}/#/experiments/{experiment}?workflowType=machine_learning", 1400, 900,
                        expression="document.body.innerText", settle=10)
    assert "Dataset" in runs and "adding T=20 (generated)" in runs  # the runs table's Dataset column
    assert "Benchmark cells of ui-view" in runs  # the experiment's description
