"""Where studies live (a journal file, or an RDB storage with heartbeats) and the locks workers take turns by."""
from __future__ import annotations

import contextlib
import fcntl
import os
import warnings
from pathlib import Path

from suite.errors import UserError

JOURNAL = "optuna-journal.log"  # beside mlflow.db; see storage_url()
MAX_RETRY = 3  # a trial whose worker died is run again (same parameters) up to this many times
SCHEMA = "rnnbench-schema"  # the lock around creating an RDB storage's tables


def storage_url(cli: str | None, tracking_uri: str, profile: str | None = None) -> str:
    """--storage, else $RNNBENCH_OPTUNA_STORAGE, else the profile's stores.optuna_storage, else a journal
    file beside the local MLflow store.

    The journal file (Optuna's JournalFileBackend) takes appends under a file lock, so several local
    worker processes share it safely; SQLite serialises writers and answers "database is locked".
    """
    url = cli or os.environ.get("RNNBENCH_OPTUNA_STORAGE") or profile
    if url:
        return url
    local = tracking_uri.startswith("sqlite:///")
    folder = Path(tracking_uri.removeprefix("sqlite:///")).parent if local else Path(".")
    return str(folder / JOURNAL)


def open_storage(url: str):
    """The journal file (a path) or an RDB storage (a SQLAlchemy URL) with heartbeats.

    With RDB storage every running trial beats; one silent past the grace period (its worker was
    killed, its node lost) is failed by the next worker and retried with the same parameters.
    """
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    from suite.cluster import heartbeat_s
    from suite.stores import redact, writable

    if "://" not in url:  # a path: the journal file
        from optuna.storages.journal import JournalFileBackend

        if not Path(url).resolve().parent.exists():
            raise UserError(f"--storage: folder of {url} does not exist")
        writable(Path(url).resolve(), "--storage")
        return optuna.storages.JournalStorage(JournalFileBackend(url))
    if url.split("://")[0].split("+")[0] not in ("sqlite", "postgresql", "mysql"):
        raise UserError(f"--storage: {redact(url)}: expected a path, or a postgresql://, mysql:// or sqlite:/// URL")
    beat = max(1, round(heartbeat_s()))
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats: stable since 2.9
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")  # ask/tell beats too (worker.py)
    try:
        with claim_lock(url, SCHEMA):  # workers starting together would race to create the tables
            return optuna.storages.RDBStorage(url, heartbeat_interval=beat, grace_period=3 * beat,
                                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(MAX_RETRY),
                                              engine_kwargs=_engine_kwargs(url))
    except Exception as e:
        raise UserError(f"--storage: cannot open {redact(url)} ({type(e).__name__}); "
                        "check the URL and the server") from None


def _engine_kwargs(url: str) -> dict:
    """An unreachable PostgreSQL/MySQL answers within 10 s, not after minutes of retries."""
    timeout = {"connect_timeout": 10} if url.startswith(("postgresql", "mysql")) else {}
    return {"pool_pre_ping": True, **({"connect_args": timeout} if timeout else {})}


@contextlib.contextmanager
def claim_lock(url: str, name: str):
    """Serialises 'count the trials, then ask for one' across every worker of study `name`.

    A journal file or SQLite database: a file lock beside it (one machine; the schema lock has a file of
    its own, since a study's lock is held while its storage opens). PostgreSQL: an advisory lock in the
    database itself, so workers on many nodes take turns.
    """
    if url.startswith("postgresql"):
        import hashlib

        import sqlalchemy

        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
                try:
                    yield
                finally:
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        finally:
            engine.dispose()
        return
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None if "://" in url else url
    if path is None:  # another database: no cross-process lock; a study may end a trial or two over
        yield
        return
    suffix = ".schema.claim" if name == SCHEMA else ".claim"  # not .lock: the journal backend's own lock is named so
    with open(f"{path}{suffix}", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
