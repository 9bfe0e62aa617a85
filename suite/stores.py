"""Where the tracking store is, whether it answers (one line within seconds when not), URLs without secrets,
and the client every command talks to it through (`open_client`)."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from suite.errors import UserError, connection_lost, disk_fault
from suite.patience import StoreClient

DEFAULT_URI = "sqlite:///mlflow.db"  # MLflow's own default store; artifacts go to ./mlartifacts
DEFAULT_UI = "http://127.0.0.1:5000"  # where `make ui` serves the local store
PAGE = 1_000  # runs, experiments or model versions per request; every listing is read to its last page


def tracking_uri(cli_uri: str | None = None, profile_uri: str | None = None) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else the profile's stores.tracking_uri, else the local store."""
    return cli_uri or os.environ.get("MLFLOW_TRACKING_URI") or profile_uri or DEFAULT_URI


SECRET_KEYS = ("pass", "pwd", "secret", "token", "key", "auth", "credential")  # query parameters holding one
SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql")  # MLflow's tracking stores (and +driver)
DATABASES = ("postgresql", "mysql", "mssql")  # stores MLflow reaches over a connection (SQLite is a file)


def redact(uri: str) -> str:
    """The URI without a secret (a password, or a query parameter that holds one), for logs, tags and messages."""
    try:
        parts = urlsplit(uri)
        netloc = parts.netloc
        if parts.password is not None:
            netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        query = "&".join(f"{k}=***" if any(s in k.lower() for s in SECRET_KEYS) and eq else f"{k}{eq}{v}"
                         for k, eq, v in (p.partition("=") for p in parts.query.split("&") if p))
        if netloc == parts.netloc and query == parts.query:
            return uri  # nothing secret: as given (urlunsplit would rewrite sqlite:////abs/path)
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:  # not even a URL (e.g. a bad port): show its scheme only
        return uri.split("://", 1)[0] + "://***" if "://" in uri else "***"


def check_store(uri: str, read_only: bool = False):
    """One line, within seconds, when the tracking store cannot serve: an unknown scheme, a folder that is not
    there, a file that is not an MLflow store, an unreachable server or database. `read_only`: the store must
    exist already (a report never creates one)."""
    scheme = urlsplit(uri).scheme.split("+")[0]
    if scheme in ("", "file"):
        raise UserError(f"--tracking-uri: {redact(uri)}: MLflow 3 needs a database store; use e.g. sqlite:///mlflow.db")
    if scheme not in SCHEMES:
        raise UserError(f"--tracking-uri: {redact(uri)}: unknown scheme '{scheme}'; use sqlite:///mlflow.db, "
                        "http(s)://HOST:PORT or postgresql://USER@HOST/DB")
    if scheme in ("http", "https"):
        import requests

        if urlsplit(uri).username or urlsplit(uri).password:
            raise UserError(f"--tracking-uri: {redact(uri)}: credentials do not go in the URL; export "
                            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD instead")
        try:
            requests.get(uri.rstrip("/") + "/health", timeout=5, verify=tls_verify()).raise_for_status()
        except requests.RequestException as e:
            raise UserError(f"--tracking-uri: tracking server {redact(uri)} unreachable ({type(e).__name__}); "
                            "start it (`make server`) or unset MLFLOW_TRACKING_URI for the local store") from None
    elif scheme == "sqlite":
        _check_sqlite(uri, read_only)
    else:
        _check_database(uri)


def tls_verify():
    """What requests verifies an https server with, as MLflow's own client does: a CA bundle or certificate
    ($MLFLOW_TRACKING_SERVER_CERT_PATH), nothing ($MLFLOW_TRACKING_INSECURE_TLS=true), else the system's CAs."""
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        return False
    return os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True


def auth_failure(error: BaseException) -> str | None:
    """One line for a tracking server's 401 or 403, naming the credential to set; None for any other error."""
    code = getattr(error, "error_code", "")
    text = str(error)
    if code == "UNAUTHENTICATED" or " 401 " in text:
        return ("the tracking server refused the credentials (401): export MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD of a user of it (an admin adds one: rnnbench server users add NAME "
                "--permission EDIT)")
    if code == "PERMISSION_DENIED" or " 403 " in text:
        user = os.environ.get("MLFLOW_TRACKING_USERNAME", "this user")
        return (f"the tracking server does not let {user} do this (403): it needs EDIT to run or tune, READ to "
                "report (an admin grants it: rnnbench server users add NAME --permission EDIT)")
    return None


def known_failure(e: BaseException) -> tuple[int, str] | None:
    """(exit status, the line) for an error no command caught that is not a bug: the tracking server refusing
    the credentials (2), a full or read-only disk (1), a database (a tracking store read directly, an Optuna
    storage) gone (1); None for anything else."""
    if auth_failure(e):
        return 2, auth_failure(e)
    if fault := disk_fault(e):
        what, path = fault
        return 1, (f"{what}{f' writing {path}' if path else ''}: free space (or pick a writable folder) and rerun; "
                   "finished results are kept")
    if cause := connection_lost(e):
        return 1, (f"a database stopped answering ({cause}); finished results are kept: rerun the same command "
                   "when it is back")
    return None


def _check_sqlite(uri: str, read_only: bool):
    import sqlite3

    db = sqlite_file(uri)
    if db.is_dir():
        raise UserError(f"--tracking-uri: {db} is a folder, not a database file; use e.g. sqlite:///{db}/mlflow.db")
    if not db.parent.exists():
        raise UserError(f"--tracking-uri: folder {db.parent} for {uri} does not exist")
    if not read_only:
        if db.exists():
            writable(db, "--tracking-uri")
        writable(db.parent, "--tracking-uri")  # SQLite writes its journal beside the file
    if not db.is_file() or db.stat().st_size == 0:
        if read_only:
            raise UserError(f"no MLflow store at {uri} ({db} {'is empty' if db.is_file() else 'not found'}); "
                            "run `make benchmark` first")
        _create_sqlite(uri, db)
        return
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as e:
        raise UserError(f"--tracking-uri: {db} is not an MLflow store ({e})") from None
    if not {"experiments", "runs", "alembic_version"} <= tables:
        raise UserError(f"--tracking-uri: {db} is a database but not an MLflow store (no experiments table)")


def sqlite_file(uri: str) -> Path:
    """The file of a sqlite:/// store; an in-memory one (sqlite://, sqlite:///, :memory:) is refused, since every
    result in it would be gone when the command ends."""
    path = uri.split("://", 1)[1].split("?", 1)[0]
    if path.strip("/") in ("", ":memory:") or "mode=memory" in uri:
        raise UserError(f"--tracking-uri: {uri} is an in-memory store: every result would be gone when the command "
                        "ends; name a file, e.g. sqlite:///mlflow.db")
    return Path(path[1:])


def _create_sqlite(uri: str, db: Path):
    """MLflow's tables in a new SQLite file, one process at a time (a lock on the folder): two commands starting
    together on a new store would both run MLflow's schema migrations, and one die in them."""
    import fcntl

    from mlflow import MlflowClient

    folder, said = os.open(db.parent, os.O_RDONLY), logging.getLogger("mlflow.store.db.utils")
    level = said.level
    said.setLevel(logging.WARNING)  # its two INFO lines ("Creating initial MLflow database tables..."): stderr is ours
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        MlflowClient(uri).search_experiments(max_results=1)  # creates and migrates the tables, or finds them made
    finally:
        os.close(folder)  # and the lock with it
        said.setLevel(level)


def writable(path: Path, flag: str):
    """One line when `path` (a file, or a folder to write into) cannot be written: a read-only file system, or
    no permission; a folder not made yet is judged by the nearest one that exists."""
    while not path.exists() and path != path.parent:
        path = path.parent
    if os.access(path, os.W_OK):
        return
    folder = path if path.is_dir() else path.parent
    why = "is on a read-only file system" if os.statvfs(folder).f_flag & os.ST_RDONLY else \
        "is not writable by this user"
    raise UserError(f"{flag}: {path} {why}; pick a folder you can write (nothing was written)")


def _check_database(uri: str):
    """A PostgreSQL/MySQL store answers within 10 s (MLflow itself would retry for minutes)."""
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(uri, poolclass=sqlalchemy.pool.NullPool, connect_args={"connect_timeout": 10})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as e:
        raise UserError(f"--tracking-uri: cannot reach the database {redact(uri)} ({type(e).__name__}); "
                        "check the URL and that the server runs") from None


def reachable(uri: str) -> bool:
    """Whether a tracking server answers /health (a database store: whether MLflow can search it)."""
    if urlsplit(uri).scheme in ("http", "https"):
        import requests

        try:
            return requests.get(uri.rstrip("/") + "/health", timeout=5, verify=tls_verify()).ok
        except requests.RequestException:
            return False
    try:
        from mlflow import MlflowClient

        MlflowClient(uri).search_experiments(max_results=1)
        return True
    except Exception:
        return False


def ui_url(uri: str) -> str:
    """The MLflow UI of the store: a tracking server serves its own (the URL without credentials), a local store
    `make ui`'s address."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return DEFAULT_UI
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}".rstrip("/")


def every(search, *args, **kwargs) -> list:
    """Everything an MLflow search finds (search_runs, search_experiments, search_model_versions, ...), page by
    page: no listing stops at a cap without saying so."""
    found, token = [], None
    while True:
        page = search(*args, max_results=PAGE, page_token=token, **kwargs)
        found += page
        token = page.token
        if not token:
            return found


def first_wins(attempt, done, tries: int = 4):
    """attempt() where jobs starting together may race to do the same thing (create an experiment, set a tag,
    log a dataset). When the store refuses ours and done() says another job did it first, that is success;
    when the refusal left it undone (a dataset another job created while we tried), try again, then give up."""
    for n in range(tries):
        try:
            return attempt()
        except Exception:
            if done():
                return None
            if n == tries - 1:
                raise
            time.sleep(0.2 * (n + 1))


def _no_tracebacks(record) -> bool:
    return record.levelno < logging.ERROR


def _not_ignored(record) -> bool:
    """psycopg's warning that it ignored an error closing a connection the database broke (a restart): the
    call's own error is what counts, and it is raised (and waited out, or said in one line)."""
    return not str(record.msg).startswith("error ignored")


def open_client(uri: str) -> StoreClient:
    """The MLflow client on `uri` every command uses: its calls finish before Ctrl-C stops us (StoreClient).
    MLflow's own log of a failed database call (a traceback on stderr, before the error reaches us) and
    psycopg's warning on a connection it could not close cleanly are left out: the error itself is raised, and
    said in one line where it ends a command."""
    from mlflow import MlflowClient

    logging.getLogger("mlflow.store.db.utils").addFilter(_no_tracebacks)
    logging.getLogger("psycopg").addFilter(_not_ignored)
    scheme = urlsplit(uri).scheme.split("+")[0]
    return StoreClient(MlflowClient(uri), sqlite=scheme == "sqlite", database=redact(uri) if scheme in DATABASES
                       else None)
