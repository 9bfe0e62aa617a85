"""A shared tracking server that lets in only the team: MLflow's basic-auth app behind `rnnbench server`, against a
real server on 127.0.0.1 with PostgreSQL as its store, and one over TLS."""
import os
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from tests.servers import MlflowServer

pytestmark = pytest.mark.slow  # real servers and fresh processes: `make test-all` runs these

ADMIN, EDITOR, READER = "admin-passw0rd-long", "editor-passw0rd", "reader-passw0rd"
SECRETS = (ADMIN, EDITOR, READER)
SMOKE = ["--profile", "smoke", "--tasks", "adding", "--models", "lstm"]


@pytest.fixture(scope="module")
def auth_server(postgres, tmp_path_factory):
    root = tmp_path_factory.mktemp("auth")
    server = MlflowServer(postgres.create("mlflow_auth"), root / "artifacts", root / "server.log", args=["--auth"],
                          env={"RNNBENCH_ADMIN_PASSWORD": ADMIN})
    for user, password, permission in (("editor", EDITOR, "EDIT"), ("reader", READER, "READ")):
        done = rnnbench("server", "users", "add", user, "--permission", permission, "--tracking-uri", server.url,
                        user="admin", password=ADMIN, cwd=root, extra={"RNNBENCH_USER_PASSWORD": password})
        assert done.returncode == 0, done.stderr[-2000:]
    yield server
    server.stop()


def rnnbench(*argv, user=None, password=None, cwd, extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    if user:
        env |= {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}
    return subprocess.run([sys.executable, "-m", "suite", *argv], cwd=cwd, env={**env, **(extra or {})},
                          capture_output=True, text=True, timeout=600)


def contents(url) -> tuple:
    """Every experiment and run on the server, as the admin sees them."""
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = "admin", ADMIN
    try:
        client = MlflowClient(url)
        experiments = client.search_experiments()
        runs = client.search_runs([e.experiment_id for e in experiments], max_results=1000) if experiments else []
        return sorted(e.name for e in experiments), sorted((r.info.run_id, r.info.status) for r in runs), runs
    finally:
        del os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]


def one_line_refusal(done, words):
    assert done.returncode == 2, done.stderr[-1500:]
    err = done.stderr.strip()
    assert err.count("\n") == 0 and words in err and "Traceback" not in err, err


def test_the_team_is_let_in_and_nobody_else(auth_server, tmp_path):
    url = auth_server.url
    before = contents(url)[:2]
    nobody = rnnbench("benchmark", *SMOKE, "--tracking-uri", url, cwd=tmp_path)
    one_line_refusal(nobody, "export MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")
    wrong = rnnbench("benchmark", *SMOKE, "--tracking-uri", url, user="editor", password="not-the-password", cwd=tmp_path)
    one_line_refusal(wrong, "refused the credentials (401)")
    assert contents(url)[:2] == before  # nothing written

    edited = rnnbench("benchmark", *SMOKE, "--tracking-uri", url, user="editor", password=EDITOR, cwd=tmp_path)
    assert edited.returncode == 0 and "1 trained" in edited.stdout, edited.stderr[-2000:]
    tuned = rnnbench("tune", "--profile", "smoke", "--model", "lstm", "--task", "adding", "--trials", "1",
                     "--storage", str(tmp_path / "journal.log"), "--tracking-uri", url, user="editor",
                     password=EDITOR, cwd=tmp_path)
    assert tuned.returncode == 0 and "1/1 done" in tuned.stdout, tuned.stderr[-2000:]

    after = contents(url)[:2]
    refused = rnnbench("benchmark", "--profile", "smoke", "--tasks", "copy", "--models", "gru", "--tracking-uri", url,
                       user="reader", password=READER, cwd=tmp_path)
    one_line_refusal(refused, "does not let reader do this (403)")
    assert contents(url)[:2] == after  # refused before any run was created
    report = rnnbench("report", "--profile", "smoke", "--tracking-uri", url, "--out", str(tmp_path / "site"),
                      user="reader", password=READER, cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-2000:]

    script = tmp_path / "job.sbatch"
    slurm = rnnbench("slurm", "benchmark", "--out", str(script), "--tracking-uri", url, user="editor",
                     password=EDITOR, cwd=tmp_path)
    assert slurm.returncode == 0, slurm.stderr[-1000:]
    _, _, runs = contents(url)
    written = [done.stdout + done.stderr for done in (nobody, wrong, edited, tuned, refused, report, slurm)]
    written += [str(r.data.params) + str(r.data.tags) for r in runs]
    written += [p.read_text(errors="ignore") for p in (tmp_path / "site").rglob("*") if p.is_file()]
    written += [script.read_text()]
    assert not [text for text in written for secret in SECRETS if secret in text]


@pytest.mark.parametrize("argv,words", [
    (["server", "--host", "0.0.0.0"], "named users need an admin password"),
    (["server", "--host", "0.0.0.0", "--admin-password-file", "/no/such"], "--admin-password-file: /no/such not found"),
    (["ui", "--host", "0.0.0.0"], "the UI stays on this machine"),
    (["benchmark", "--profile", "smoke", "--tracking-uri", "http://editor:x@127.0.0.1:9"], "credentials do not go in"),
])
def test_beyond_loopback_only_with_auth_and_no_credentials_in_urls(tmp_path, argv, words):
    done = rnnbench(*argv, cwd=tmp_path, extra={"RNNBENCH_ADMIN_PASSWORD": ""})
    one_line_refusal(done, words)


def test_an_admin_password_file_must_be_private(tmp_path):
    secret = tmp_path / "admin"
    secret.write_text(ADMIN)
    secret.chmod(0o644)
    done = rnnbench("server", "--host", "0.0.0.0", "--admin-password-file", str(secret), cwd=tmp_path)
    one_line_refusal(done, "must be yours and readable by you only")


def test_the_server_over_tls(tmp_path):
    """HTTPS with a certificate the client is told to trust (MLFLOW_TRACKING_SERVER_CERT_PATH), as MLflow's own."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                           "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                           str(cert)], capture_output=True, text=True)
    if made.returncode:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"openssl could not make a certificate: "
                                                               f"{made.stderr[-300:]}")
    server = MlflowServer(f"sqlite:///{tmp_path}/tls.db", tmp_path / "artifacts", tmp_path / "tls.log",
                          args=["--auth", "--tls-cert", str(cert), "--tls-key", str(key)],
                          env={"RNNBENCH_ADMIN_PASSWORD": ADMIN}, cert=cert)
    try:
        assert server.url.startswith("https://")
        trust = {"MLFLOW_TRACKING_SERVER_CERT_PATH": str(cert)}
        done = rnnbench("run", "--profile", "smoke", "--model", "rnn", "--task", "adding", "--tracking-uri", server.url,
                        user="admin", password=ADMIN, cwd=tmp_path, extra=trust)
        assert done.returncode == 0, done.stderr[-2000:]
        untrusted = rnnbench("run", "--profile", "smoke", "--model", "rnn", "--task", "adding", "--tracking-uri",
                             server.url, user="admin", password=ADMIN, cwd=tmp_path)
        one_line_refusal(untrusted, "unreachable (SSLError)")
    finally:
        server.stop()
