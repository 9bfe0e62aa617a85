"""The report site: built from a smoke store alone, valid, offline, faithful to MLflow, byte-stable, and it renders."""
import base64
import csv
import io
import json
import os
import re
import select
import shutil
import statistics
import subprocess
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from mlflow import MlflowClient

from suite.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXP = "t-report"
SOURCES = ["--experiment", EXP, "--experiment", f"{EXP}-tune"]
UI = "http://127.0.0.1:5000"
MODELS = ["rnn", "lstm", "gru", "attn_rnn"]


@pytest.fixture(scope="module")
def filled(store, tmp_path_factory):
    """A smoke store with every kind of result: cells (one failed, three never run, two seeds of two models
    on adding), a horizon sweep, a gradient-flow run, a speed run, a tuning study and a tuned cell."""
    import suite.train

    root, uri = store
    journal = tmp_path_factory.mktemp("journal") / "journal.log"
    common = ["--tracking-uri", uri, "--experiment", EXP]
    real = suite.train.assemble

    def build(cell, device):
        if (cell.model, cell.task) == ("gru", "copy"):
            raise RuntimeError("boom in gru")
        return real(cell, device)

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setattr(suite.train, "assemble", build)
        assert main(["benchmark", "--profile", "smoke", "--tasks", "mnist_rows,copy,adding", *common]) == 1
        mp.setattr(suite.train, "assemble", real)
        assert main(["benchmark", "--profile", "smoke", "--tasks", "mnist_pixels", "--models", "lstm", *common]) == 0
        assert main(["benchmark", "--profile", "smoke", "--tasks", "adding", "--models", "rnn,lstm", "--seeds", "2", *common]) == 0
        assert main(["horizon", "--task", "copy", "--profile", "smoke", "--models", "lstm,gru", "--lengths", "5,10",
                     "--budget-steps", "8", *common]) == 0
        assert main(["gradflow", "--task", "adding", "--profile", "smoke", "--models", "rnn,lstm", *common]) == 0
        assert main(["speed", "--profile", "smoke", "--tasks", "adding", "--models", "lstm", "--repeats", "1",
                     "--steps", "3", *common]) == 0
        # its own experiment, as by default: a trial's run has the config_hash of the tuned cell it found
        assert main(["tune", "--profile", "smoke", "--model", "lstm", "--task", "adding", "--storage", str(journal),
                     "--tracking-uri", uri, "--experiment", f"{EXP}-tune", "--trials", "2"]) == 0
        assert main(["benchmark", "--tuned", "--profile", "smoke", "--tasks", "adding", "--models", "lstm",
                     "--storage", str(journal), *common]) == 0
    return uri


@pytest.fixture(scope="module")
def site(filled, tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "report"
    assert main(["report", "--tracking-uri", filled, *SOURCES, "--out", str(out)]) == 0
    return out


class Page(HTMLParser):
    """Checks nesting strictly and collects ids, links, images and table structure."""

    VOID = {"meta", "link", "img", "br", "hr", "input", "source", "wbr"}

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.stack, self.ids, self.links, self.imgs, self.errors = [], set(), [], [], []
        self.tables = self.captions = self.scoped = 0
        self.feed(text)
        self.close()
        if self.stack:
            self.errors.append(f"unclosed {self.stack}")

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        if tag == "link" and "href" in a:
            self.links.append(a["href"])
        if tag == "img":
            self.imgs.append(a)
        self.tables += tag == "table"
        self.captions += tag == "caption"
        self.scoped += tag == "th" and a.get("scope") in ("col", "row")
        if tag == "th" and a.get("scope") not in ("col", "row"):
            self.errors.append("th without scope")
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()


def pages(site):
    return {p.name: Page(p.read_text()) for p in sorted(site.glob("*.html"))}


def expected_cells(uri):
    """(task, seq_len, model, tuned) -> the newest FINISHED run of each seed, straight from MLflow."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(EXP)
    runs = sorted(client.search_runs([exp.experiment_id], max_results=5000), key=lambda r: (r.info.start_time, r.info.run_id))
    cells = {}
    for r in runs:
        t = r.data.tags
        if r.info.status != "FINISHED" or t.get("rnnbench_role") != "cell":  # benchmark cells only
            continue
        cells[(t["task"], int(t["seq_len"]), t["model"], t.get("tuned") == "true", int(t["seed"]))] = r
    rows = {}
    for (task, T, model, tuned, seed), r in cells.items():
        rows.setdefault((task, T, model, tuned), {})[seed] = r
    return rows


def test_every_page_parses_with_alt_text_captions_and_headers(site):
    found = pages(site)
    assert {"index.html", "task-mnist_rows.html", "task-mnist_pixels.html", "task-copy.html", "task-adding.html",
            "speed.html"} <= set(found)
    for name, page in found.items():
        assert not page.errors, (name, page.errors[:5])
        assert page.imgs or name == "index.html"
        assert all(img.get("alt", "").strip() for img in page.imgs), name
        assert page.tables and page.captions == page.tables and page.scoped, name
        text = (site / name).read_text()
        assert '<meta name="viewport"' in text and '<html lang="en">' in text
    for name in ("summary.md", "leaderboard.csv", "style.css"):
        assert (site / name).stat().st_size > 0


def test_local_links_resolve_and_nothing_points_to_another_host(site):
    ids = {name: page.ids for name, page in pages(site).items()}
    for name, page in pages(site).items():
        for url in page.links + [img["src"] for img in page.imgs]:
            parts = urlsplit(url)
            if parts.scheme in ("http", "https"):
                assert url.startswith(UI + "/#/experiments/"), (name, url)  # links to the MLflow UI, never loaded
                continue
            if url == "data:,":  # the empty favicon that stops a browser asking for one
                continue
            assert not parts.scheme and not parts.netloc and not url.startswith("//"), (name, url)
            target = unquote(parts.path) or name
            assert (site / target).is_file(), (name, url)
            if parts.fragment:
                assert parts.fragment in ids[target], (name, url)
    for path in site.rglob("*"):
        if path.is_file() and path.suffix != ".png":
            text = path.read_text()
            for url in re.findall(r"(?:https?:)?//[\w.-]+[^\s\"'<>)]*", text):
                if path.suffix == ".svg":  # XML namespace names, not requests
                    assert url in ("http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"), (path.name, url)
                else:  # the MLflow UI: its address, and run links (never loaded by the page)
                    assert url == UI or url.startswith(UI + "/#/experiments/"), (path.name, url)
            assert not re.search(r"@import|url\((?!#)|<script|<iframe|@font-face", text), path.name  # url(#id): in-file


def test_leaderboards_hold_mlflows_numbers(site, filled):
    rows = {(r["task"], int(r["seq_len"]), r["model"], r["tuned"] == "true"): r
            for r in csv.DictReader(io.StringIO((site / "leaderboard.csv").read_text()))}
    for task in ("mnist_rows", "mnist_pixels", "copy", "adding"):  # a row per model, finished or not
        assert {m for (t, _, m, tuned) in rows if t == task and not tuned} == set(MODELS), task
    expected = expected_cells(filled)
    assert set(expected) <= set(rows)
    for key, seeds in expected.items():
        row, runs = rows[key], [seeds[s] for s in sorted(seeds)]
        metric = "test_mse" if key[0] == "adding" else "test_acc"
        values = [r.data.metrics[metric] for r in runs]
        assert int(row["n"]) == len(runs) and row["run_ids"].split() == [r.info.run_id for r in runs]
        assert float(row["test_mean"]) == pytest.approx(statistics.mean(values), rel=1e-12)
        if len(values) == 1:
            assert row["test_std"] == ""
        else:
            assert float(row["test_std"]) == pytest.approx(statistics.stdev(values), rel=1e-12)
        ratio = statistics.mean(r.data.metrics["test_vs_chance"] for r in runs)
        assert float(row["test_vs_chance_mean"]) == pytest.approx(ratio, rel=1e-12)
        assert float(row["n_params"]) == runs[0].data.metrics["n_params"]
        speed = statistics.mean(r.data.metrics["train_samples_per_s"] for r in runs)
        assert float(row["train_samples_per_s_mean"]) == pytest.approx(speed, rel=1e-12)
    lstm = expected[("adding", 20, "lstm", False)]
    assert len(lstm) == 2 and rows[("adding", 20, "lstm", True)]["n"] == "1"  # seeds 0, 1; tuned: its own row
    # the same numbers on the page, formatted, each run linked to the MLflow UI
    index = (site / "index.html").read_text()
    accs = [r.data.metrics["test_acc"] for r in expected[("mnist_rows", 28, "lstm", False)].values()]
    assert f"{statistics.mean(accs):.3f}" in index
    mses = [r.data.metrics["test_mse"] for r in lstm.values()]
    assert f"{statistics.mean(mses):.3g} ± {statistics.stdev(mses):.3g}" in index
    for run in lstm.values():
        assert f'{UI}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}?workflowType=machine_learning"' in index
    summary = (site / "summary.md").read_text()
    assert "## adding T=20" in summary and f"{statistics.mean(mses):.3g} ± {statistics.stdev(mses):.3g}" in summary


def test_failed_missing_and_published_figures_are_shown(site):
    rows = {(r["task"], r["model"], r["tuned"]): r for r in csv.DictReader(io.StringIO((site / "leaderboard.csv").read_text()))}
    assert (rows[("copy", "gru", "false")]["n"], rows[("copy", "gru", "false")]["n_failed"]) == ("0", "1")
    for model in ("rnn", "gru", "attn_rnn"):
        assert rows[("mnist_pixels", model, "false")]["n_missing"] == "1"
    index = (site / "index.html").read_text()
    assert "RuntimeError: boom in gru" in index and index.count("planned, never run") == 3
    # the smoke runs train on the 5k subset: the full-MNIST figure is listed as not comparable, never beside them
    assert "0.989" in index and "Cooijmans et al. 2017" in index and "not comparable" in index
    assert "trained on full MNIST (60,000 training digits); these runs on the 5,000-digit subset" in index
    assert "published (not ours)" not in index
    summary = (site / "summary.md").read_text()
    assert "gru seed 0 FAILED (`RuntimeError: boom in gru`)" in summary and "0.989 [1]" not in summary
    assert "Published, not comparable (trained on full MNIST (60,000 training digits); these runs on the 5,000-digit subset (3,500 training)): Cooijmans et al. 2017" in summary and "lstm 0.989, BN-LSTM 0.990" in summary
    assert "lstm | yes |" in summary  # tuned


def test_task_pages_show_curves_horizon_gradflow_attention_tuning_and_speed(site):
    copy = (site / "task-copy.html").read_text()
    assert "plots/copy-t-20-val-epoch.svg" in copy and "plots/copy-t-20-val-elapsed.svg" in copy
    assert "plots/copy-t-20-size.svg" in copy and "Dependency horizon" in copy and "plots/copy-horizon.svg" in copy
    assert "img/copy-t-20-attn_rnn-attention.png" in copy
    adding = (site / "task-adding.html").read_text()
    assert "plots/adding-t-20-gradflow-run.svg" in adding and "Tuning studies" in adding and "smoke-lstm-adding-T20" in adding
    speed = (site / "speed.html").read_text()
    assert "plots/speed.svg" in speed and "suite / raw" in speed
    for svg in site.glob("plots/*.svg"):
        text = svg.read_text()
        assert text.startswith("<?xml") and "<metadata>" not in text and "dc:date" not in text


def test_the_same_store_gives_the_same_bytes(site, filled, tmp_path):
    again = tmp_path / "again"
    assert main(["report", "--tracking-uri", filled, *SOURCES, "--out", str(again)]) == 0
    files = lambda d: {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}  # noqa: E731
    first, second = files(site), files(again)
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []


def test_default_folder_is_reports_slash_experiment(filled, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--tracking-uri", filled, "--experiment", EXP, "--mlflow-ui", ""]) == 0
    index = Path("reports") / EXP / "index.html"
    assert index.is_file() and str(index) in capsys.readouterr().out
    assert "http" not in index.read_text()  # no UI links asked for


@pytest.mark.parametrize("case", ["no store", "empty experiment", "unknown experiment"])
def test_an_empty_or_missing_store_is_one_line(store, tmp_path, monkeypatch, capsys, case):
    monkeypatch.chdir(tmp_path)
    _, uri = store
    if case == "no store":
        args, expected = ["--tracking-uri", f"sqlite:///{tmp_path}/none.db"], "no MLflow store at"
    elif case == "empty experiment":
        MlflowClient(uri).get_experiment_by_name("t-empty") or MlflowClient(uri).create_experiment("t-empty")
        args, expected = ["--tracking-uri", uri, "--experiment", "t-empty"], "no runs in experiment t-empty of"
    else:
        args, expected = ["--tracking-uri", uri, "--experiment", "nope"], "unknown experiment 'nope'"
    assert main(["report", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err
    assert "make benchmark" in err or "experiments there:" in err
    assert not (tmp_path / "none.db").exists() and not (tmp_path / "reports").exists()


def test_make_benchmark_ends_with_the_report():
    if not shutil.which("make"):
        pytest.skip("make not installed")
    dry = subprocess.run(["make", "-n", "benchmark", "PROFILE=smoke"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "rnnbench benchmark --profile smoke" in dry and "rnnbench report --profile smoke" in dry
    assert "make report" in subprocess.run(["make", "help"], cwd=ROOT, capture_output=True, text=True).stdout


# -- a real browser --------------------------------------------------------------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                  "--remote-debugging-pipe"]  # no sandbox: CI runs as root; no /dev/shm: containers have little


OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
LAYOUT = """(() => {
  const vw = document.documentElement.clientWidth, problems = [];
  for (const el of document.querySelectorAll('body *')) {
    if (el.closest('.scroll') || el.closest('.sr-only')) continue;
    const r = el.getBoundingClientRect();
    if (r.width && r.right > vw + 1) problems.push('wider than the page: ' + el.tagName + ' ' + el.className);
  }
  for (const c of document.querySelectorAll('p.caption, figcaption, .refs li, .banner, .settings')) {
    const r = c.getBoundingClientRect();
    if (c.scrollWidth > c.clientWidth + 1 || r.right > vw + 1) problems.push('clipped: ' + c.textContent.slice(0, 50));
  }
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src);
  const banners = [...document.querySelectorAll('.banner')].map(b => b.textContent);
  return JSON.stringify({problems, broken, banners});
})()"""


def browse(url: str, width: int, height: int, mobile: bool = False, timeout: float = 60, expression: str = OVERFLOW,
           settle: float = 0, full: bool = False):
    """Load a page in headless Chromium over the DevTools pipe: (console errors, PNG screenshot, the value of
    `expression` evaluated in the page: by default how many px it overflows the viewport).

    Errors are console error/warning calls, uncaught exceptions and failed loads (e.g. a missing image).
    """
    r_cmd, w_cmd = os.pipe()  # Chromium reads commands on fd 3 and writes answers on fd 4
    r_evt, w_evt = os.pipe()
    profile = tempfile.mkdtemp()

    def child():
        a, b = os.dup(r_cmd), os.dup(w_evt)  # above 4 first: the pipes may be fds 3 and 4 themselves
        os.dup2(a, 3)
        os.dup2(b, 4)

    proc = subprocess.Popen([shutil.which("chromium"), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            preexec_fn=child, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(r_cmd)
    os.close(w_evt)
    buf, events, ids, deadline = b"", [], [0], time.monotonic() + timeout

    def read():
        nonlocal buf
        while b"\0" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([r_evt], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(r_evt, 1 << 20)
            if not chunk:
                raise EOFError("Chromium closed the pipe")
            buf += chunk
        message, buf = buf.split(b"\0", 1)
        return json.loads(message)

    def call(method, params=None, session=None):
        ids[0] += 1
        os.write(w_cmd, json.dumps({"id": ids[0], "method": method, "params": params or {},
                                    **({"sessionId": session} if session else {})}).encode() + b"\0")
        while (m := read()).get("id") != ids[0]:
            events.append(m)
        assert "error" not in m, (method, m["error"])
        return m.get("result", {})

    try:
        target = call("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            call(f"{domain}.enable", session=s)
        call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                    "mobile": mobile}, s)
        call("Page.navigate", {"url": url}, s)
        while not any(m.get("method") == "Page.loadEventFired" for m in events):
            events.append(read())
        time.sleep(settle)  # a page that renders with scripts (the MLflow UI) after its load event
        overflow = call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, s)["result"]["value"]
        png = base64.b64decode(call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": full}, s)["data"])
        errors = []
        for m in events:
            p = m.get("params", {})
            if m.get("method") == "Runtime.consoleAPICalled" and p["type"] in ("error", "warning", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
            elif m.get("method") == "Runtime.exceptionThrown":
                errors.append(p["exceptionDetails"].get("text"))
            elif m.get("method") == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
                errors.append(f"{p['entry']['text']} {p['entry'].get('url', '')}")
        call("Browser.close")
        return errors, png, overflow
    finally:
        os.close(w_cmd)
        os.close(r_evt)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.parametrize("page", ["index.html", "task-adding.html"])
def test_chromium_loads_the_pages_offline_without_errors(site, page, tmp_path):
    if not shutil.which("chromium"):
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI (.ci/run installs it)")
        pytest.skip("chromium not installed (apt-get install chromium); CI runs this test")
    from PIL import Image

    url = (site / page).resolve().as_uri()
    errors, png, overflow = browse(url, 1280, 900)
    assert errors == [], errors
    (tmp_path / "shot.png").write_bytes(png)
    image = Image.open(tmp_path / "shot.png").convert("L")
    assert image.size == (1280, 900)
    low, high = image.getextrema()
    assert high - low > 100 and len(image.getcolors(1 << 16)) > 20  # text and tables, not a blank page
    errors, _, overflow = browse(url, 390, 844, mobile=True)  # a phone: wide tables scroll inside their box
    assert errors == [] and overflow <= 0, (errors, overflow)


def test_missing_cells_come_from_the_plan_the_benchmark_logged(store, tmp_path, monkeypatch):
    """What counts as missing is what the benchmark planned, not what today's config file says."""
    root, uri = store
    monkeypatch.chdir(root)
    config = tmp_path / "plan.yaml"
    config.write_text("# a plan\nmodels: [rnn, gru]\nrecipe: {pinned: true}\nmodel: {hidden_size: 8}\ntrain: {epochs: 1, steps_per_epoch: 2, "
                      "n_val: 16, n_test: 16}\ntasks: {adding: {seq_len: 6}}\n")
    assert main(["benchmark", "--config", str(config), "--models", "rnn", "--tracking-uri", uri, "--experiment",
                 "t-plan"]) == 0
    config.write_text("# changed since\nmodels: [lstm]\ntasks: {copy: {seq_len: 9}}\n")
    out = tmp_path / "site"
    assert main(["report", "--tracking-uri", uri, "--experiment", "t-plan", "--out", str(out)]) == 0
    rows = {(r["task"], r["seq_len"], r["model"]): r for r in csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text()))}
    assert set(rows) == {("adding", "6", "rnn"), ("adding", "6", "gru")}
    assert (rows[("adding", "6", "rnn")]["n"], rows[("adding", "6", "gru")]["n_missing"]) == ("1", "1")


def test_a_published_figure_sits_beside_ours_only_when_the_protocol_matches():
    from suite.report.references import attach_references, load_references, quoted
    from suite.runs import Run, Setting
    from suite.scoring import Board, Row

    def board(task, T, source, variant="", model="lstm", **params):
        run = Run("r", "0", "FINISHED", 0, "", {"data_source": source, "seed": "0"},
                  {f"task.{k}": str(v) for k, v in params.items()}, {"test_acc": 0.5})
        return Board(Setting(task, T, variant), [Row(model, False, runs={0: run})], "acc")

    refs = load_references()
    full, subset = board("mnist_pixels", 784, "hf:ylecun/mnist"), board("mnist_pixels", 784, "mnist-5k")
    for b in (full, subset):
        attach_references(b, refs)
    assert full.rows[0].reference["value"] == 0.989 and full.rows[0].reference["source"].startswith("Cooijmans")
    assert {f["model"] for f in full.references} >= {"lstm", "BN-LSTM", "uRNN", "S4", "rnn", "irnn"}
    assert len({f["n"] for f in full.references}) == 3  # Cooijmans, Arjovsky and S4: one numbered source each
    assert subset.references == [] and subset.rows[0].reference is None  # a 5k-subset run never gets 0.989
    assert all("5,000-digit subset" in g["why"] for g in subset.incomparable) and len(subset.incomparable) == 3
    cooijmans = next(g for g in subset.incomparable if g["source"].startswith("Cooijmans"))
    assert "rnn 0.350 (quoting Le, Jaitly & Hinton 2015 (TANH-RNN))" in quoted(cooijmans["figures"])
    permuted = board("mnist_pixels", 784, "local:/data/mnist", "permuted")
    attach_references(permuted, refs)
    assert permuted.rows[0].reference["value"] == 0.902  # another variant's figure is not mixed in
    other = {**refs[0], "metric_definition": "accuracy over all T+20 steps", "seq_len": 784}
    fresh = board("mnist_pixels", 784, "hf:ylecun/mnist")
    attach_references(fresh, [other])
    assert fresh.references == [] and "reports accuracy over all T+20 steps" in fresh.incomparable[0]["why"]
    # ListOps at LRA's length is LRA's only when drawn with LRA's depth and arguments
    lra = board("listops", 1999, "synthetic", model="transformer", min_len=501, max_depth=10, max_args=10)
    shallow = board("listops", 1999, "synthetic", model="transformer", min_len=501, max_depth=4, max_args=10)
    for b in (lra, shallow):
        attach_references(b, refs)
    assert lra.rows[0].reference["value"] == 0.3637
    assert shallow.references == [] and any("measured with max_depth 10; these runs with max_depth 4" in g["why"]
                                            for g in shallow.incomparable)
    # sCIFAR: LRA's grayscale Image task and S4/LRU's 3-channel sCIFAR are different variants
    gray, rgb = board("scifar", 1024, "hf:uoft-cs/cifar10", model="lru"), board("scifar", 1024, "hf:uoft-cs/cifar10",
                                                                                 "rgb", model="lru")
    for b in (gray, rgb):
        attach_references(b, refs)
    assert {f["source"].split(",")[0] for f in gray.references} == {"Tay et al. 2021"} and gray.rows[0].reference is None
    assert rgb.rows[0].reference["value"] == 0.890 and "S4" in {f["model"] for f in rgb.references}


def test_every_published_figure_names_a_known_task_data_and_metric_definition_and_a_table():
    from suite.report.references import DATA, load_references
    from tasks import TASKS

    keys = {"task", "variant", "seq_len", "data", "metric", "metric_definition", "config", "source", "note", "model",
            "value", "settings", "secondary", "spread"}
    for f in load_references():
        assert set(f) <= keys and isinstance(f["seq_len"], int), f  # an unquoted comma splits a flow mapping
        assert f["data"] in DATA and f["metric"] == "test_acc" and 0 < f["value"] <= 1, f
        assert "Table" in f["source"] or "prose" in f["source"], f
        if f["task"] in TASKS and not f["metric_definition"].startswith("accuracy ("):
            assert f["metric_definition"] == TASKS[f["task"]].metric_definition, f


@pytest.mark.parametrize("width,mobile", [(1400, False), (390, True)], ids=["desktop", "phone"])
def test_every_page_lays_out_at_desktop_and_phone_width_and_carries_the_smoke_banner(site, width, mobile):
    if not shutil.which("chromium"):
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI (.ci/run installs it)")
        pytest.skip("chromium not installed (apt-get install chromium); CI runs this test")
    shots = os.environ.get("RNNBENCH_SCREENSHOTS")  # a folder: keep each page's whole-page screenshot there
    for page in sorted(p.name for p in site.glob("*.html")):
        errors, png, found = browse((site / page).resolve().as_uri(), width, 900, mobile=mobile, expression=LAYOUT,
                                    full=bool(shots))
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            (Path(shots) / f"{page.removesuffix('.html')}-{width}px.png").write_bytes(png)
        found = json.loads(found)
        assert errors == [] and found["problems"] == [] and found["broken"] == [], (page, errors, found)
        assert found["banners"] and "Smoke profile" in found["banners"][0], page  # a plumbing check says so


def test_every_metric_plot_has_its_chance_line(site):
    plots = [p for p in site.glob("plots/*.svg") if p.name.endswith(("-val-epoch.svg", "-val-elapsed.svg", "-size.svg",
                                                                      "-loss.svg", "-horizon.svg"))]
    assert len(plots) >= 12
    assert [p.name for p in plots if 'id="chance-line"' not in p.read_text()] == []


def test_a_rebuild_replaces_only_what_the_report_wrote(site, filled, tmp_path):
    """A marker lists what a build wrote: the next build removes those files (a page gone from the store goes)
    and nothing else, whoever made it."""
    from suite.report.folder import MARKER

    out = tmp_path / "site"
    shutil.copytree(site, out)
    theirs = {"img/holiday.jpg": b"\xff\xd8jpeg", "plots/thesis-figure.pdf": b"%PDF-1.7", "notes.txt": b"mine"}
    for name, data in theirs.items():
        (out / name).write_bytes(data)
    (out / "task-gone.html").write_text("<p>a task no longer in the store</p>")
    (out / MARKER).write_text((out / MARKER).read_text() + "task-gone.html\n")
    assert main(["report", "--tracking-uri", filled, *SOURCES, "--out", str(out)]) == 0
    assert {name: (out / name).read_bytes() for name in theirs} == theirs
    assert not (out / "task-gone.html").exists() and (out / "index.html").is_file()
    listed = (out / MARKER).read_text().splitlines()
    assert "index.html" in listed and not set(theirs) & set(listed)


@pytest.mark.parametrize("case", ["root", "artifacts", "file", "symlink loop", "foreign folder", "ui"])
def test_an_output_folder_the_report_does_not_own_is_one_line_and_nothing_written(filled, tmp_path, capsys, case):
    client = MlflowClient(filled)
    run = client.search_runs([client.get_experiment_by_name(EXP).experiment_id], max_results=1)[0]
    args = ["--out", str(tmp_path / "site")]
    if case == "root":
        args = ["--out", "/"]
    elif case == "artifacts":
        args = ["--out", str(Path(unquote(urlsplit(run.info.artifact_uri).path)))]
    elif case == "file":
        (tmp_path / "site").write_text("a file")
    elif case == "symlink loop":
        (tmp_path / "site").symlink_to(tmp_path / "site")
    elif case == "foreign folder":
        (tmp_path / "site").mkdir()
        (tmp_path / "site" / "holiday.jpg").write_bytes(b"\xff\xd8")
    else:
        args += ["--mlflow-ui", "javascript:alert(1)"]
    watched = Path(args[1]) if case in ("root", "artifacts") else tmp_path
    before = sorted(p.name for p in watched.iterdir()) if watched.is_dir() else []
    assert main(["report", "--tracking-uri", filled, *SOURCES, *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("--out: " if case != "ui" else "--mlflow-ui: ") in err, err
    assert (sorted(p.name for p in watched.iterdir()) if watched.is_dir() else []) == before


def test_a_report_folder_from_before_the_marker_is_adopted_only_when_it_holds_nothing_else(tmp_path):
    from suite.errors import UserError
    from suite.report.folder import claim

    old = tmp_path / "old"
    (old / "plots").mkdir(parents=True)
    for name in ("index.html", "task-adding.html", "plots/adding-T20-curves.svg"):
        (old / name).write_text("x")
    assert sorted(map(str, claim(old, []))) == ["index.html", "plots/adding-T20-curves.svg", "task-adding.html"]
    (old / "plots" / "thesis-figure.pdf").write_text("mine")
    with pytest.raises(UserError, match="thesis-figure.pdf"):
        claim(old, [])
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "style.css").write_text("a stylesheet of someone's site, no index.html of ours")
    with pytest.raises(UserError, match="did not write"):
        claim(tmp_path / "pages", [])
