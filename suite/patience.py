"""Patience with the tracking store: StoreClient, the MlflowClient every command talks through (suite/stores.py's
open_client makes it), waits out SQLite's "database is locked" and a database store that stops answering for a
moment, and lets no Ctrl-C cut a call in half; `patiently` gives the same patience to what queries the database
itself (suite/lookup.py)."""
from __future__ import annotations

import itertools
import time

from suite.errors import StoreLost, connection_lost
from suite.signals import interrupted_since, interrupts, uninterrupted


def patience_s() -> float:
    """How long a tracking store that stopped answering is waited for: as long as MLflow's own client waits for a
    tracking server, so a database store gets the same patience. That client retries with urllib3's backoff:
    after the n-th failed try it sleeps 0 (n = 1), then MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR × 2^(n-1) s, at most
    120 s a sleep, for MLFLOW_HTTP_REQUEST_MAX_RETRIES tries: 244 s with MLflow's defaults (7 and 2)."""
    from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR, MLFLOW_HTTP_REQUEST_MAX_RETRIES

    retries, factor = MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get()
    return float(sum(min(120, factor * 2 ** (n - 1)) for n in range(2, retries + 1)))


def patiently(client, call, *args, **kwargs):
    """call(*args, **kwargs) with the patience `client` has for its store (a StoreClient's; none for another
    client): for what reads the database itself rather than through MLflow (suite/lookup.py's queries)."""
    if isinstance(client, StoreClient):
        return uninterrupted(client._patiently, call, *args, **kwargs)
    return call(*args, **kwargs)


class StoreClient:
    """An MlflowClient whose calls Ctrl-C and SIGTERM do not cut in half; that on SQLite waits out "database is
    locked"; and that on a database store (PostgreSQL, MySQL) waits out the database not answering.

    SQLite lets one writer in at a time, and a writer that read first is refused at once rather than queued,
    so packed jobs logging an epoch while another ends its run would otherwise fail a healthy cell. A refused
    write left nothing behind (its transaction rolled back), so it is tried again, unless we are stopping.

    A database restarted (`pg_ctl restart`: back within a second) or failing over refuses connections, or breaks
    the one a call is using, for a moment: the call is tried again with backoff for patience_s(), as long as
    MLflow's client waits for a tracking server. MLflow's pool pings a connection before handing it out
    (pool_pre_ping), so the next try gets a fresh one; MLflow rolled the failed call's transaction back (a write
    whose commit was cut off may land twice: MLflow's metric, tag and param writes take a repeat). Still away
    after that: StoreLost, one line; from then on a call is tried once, without waiting (the run is closed if the
    database came back, and nothing waits its patience again), until one succeeds.
    """

    WAITS = (0.05, 0.1, 0.2, 0.5, 1, 2, 4, 8)  # ~16 s in all, then the error goes on up
    OUTAGE = (0.1, 0.2, 0.5, 1, 2, 4, 8, 15)  # then every 30 s, while the patience lasts

    def __init__(self, client, sqlite: bool, database: str | None = None):  # database: its URL, redacted
        self._client, self._sqlite, self._database = client, sqlite, database
        self._lost = None  # given up on the database: after how many seconds (None: it answers)
        self._said = None  # when the wait now under way was announced (monotonic s; None: none is)

    def __getattr__(self, name):
        if name.startswith("__"):  # copy and pickle probe the class before __init__ has run
            raise AttributeError(name)
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr
        return lambda *args, **kwargs: uninterrupted(self._patiently, attr, *args, **kwargs)

    def _patiently(self, attr, *args, **kwargs):
        if self._database:
            return self._through_outage(attr, *args, **kwargs)
        waits, started = self.WAITS if self._sqlite else (), interrupts()
        for wait in waits:
            try:
                return attr(*args, **kwargs)
            except Exception as e:
                if "database is locked" not in str(e) or interrupted_since(started):
                    raise
                time.sleep(wait)
        return attr(*args, **kwargs)

    def _through_outage(self, attr, *args, **kwargs):
        started, begun, waits = interrupts(), time.monotonic(), iter(self.OUTAGE)
        patience = 0.0 if self._lost is not None else patience_s()
        for tries in itertools.count(1):
            try:
                result = attr(*args, **kwargs)
            except Exception as e:
                cause = connection_lost(e)
                if cause is None or interrupted_since(started):
                    raise
                waited = time.monotonic() - begun
                if waited >= patience:
                    self._lost = self._lost if self._lost is not None else waited  # how long we waited before
                    db = self._database
                    raise StoreLost(f"tracking database {db} lost ({cause}) and not back after {self._lost:.0f} s "
                                    "of retries; finished results are kept: rerun the same command when it is back",
                                    db, cause, self._lost) from e
                if tries == 2 and self._said is None:  # a second failure in a row: say why we wait
                    self._said = begun
                    print(f"tracking database {self._database} not answering ({cause}); retrying for up "
                          f"to {patience:.0f} s", flush=True)
                _pause(min(next(waits, 30), patience - waited), started)
                continue
            if self._said is not None:
                print(f"tracking database {self._database} back after {time.monotonic() - self._said:.1f} s",
                      flush=True)
            self._lost = self._said = None
            return result


def _pause(seconds: float, started: int):
    """Sleep `seconds`, or less when Ctrl-C or SIGTERM arrives meanwhile (the call then ends with its error)."""
    end = time.monotonic() + seconds
    while not interrupted_since(started) and (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.1))
