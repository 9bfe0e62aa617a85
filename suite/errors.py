"""UserError: a mistake the user can fix, which the CLI turns into one line and exit code 2; and the one line any
error is summed up in."""


class UserError(Exception):
    """A mistake the user can fix (bad config, unknown name, unreachable server): no traceback.

    The message is kept to one line: a newline or other control character the user typed is shown escaped.
    """

    def __init__(self, message: str):
        super().__init__("".join(c if c.isprintable() else repr(c)[1:-1] for c in str(message)))


def one_line(e: BaseException) -> str:
    """An error as one line: its type and the first line of its message."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


class Fault(UserError):
    """The machine failed us mid-run (a full or read-only disk, a tracking database gone): one line like a
    UserError, but exit 1, since what the command was doing did not finish; what had finished is kept."""


class StoreLost(Fault):
    """The tracking store's database stopped answering and was not back within the patience a tracking server gets
    (patience.patience_s). `store` (redacted), `cause` (the driver's line) and `waited` (s) say it again where a
    caller names what it was doing (a cell); they travel with it to a packed job's parent (pickled)."""

    def __init__(self, message: str, store: str = "", cause: str = "", waited: float = 0.0):
        super().__init__(message)
        self.store, self.cause, self.waited = store, cause, waited

    def __reduce__(self):
        return type(self), (str(self), self.store, self.cause, self.waited)


DISK = {28: "disk full", 122: "disk quota exceeded", 30: "read-only file system"}  # errno: ENOSPC, EDQUOT, EROFS
WORDS = {"database or disk is full": "disk full", "attempt to write a readonly database": "read-only file system",
         "unable to open database file": "cannot open the database file",  # SQLite's, through SQLAlchemy and MLflow
         "No space left on device": "disk full", "Read-only file system": "read-only file system",  # an OSError's text
         "file write failed": "disk full"}  # torch.save's, on a full disk


def disk_fault(e: BaseException | None) -> tuple[str, str | None] | None:
    """(what, the path being written or None) when a full or read-only disk is behind `e` (anywhere in its chain
    of causes, also inside MLflow's and SQLAlchemy's wrappers); None when it is not the disk."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in DISK:
            return DISK[e.errno], e.filename2 or e.filename
        what = next((v for k, v in WORDS.items() if k in str(e)), None)
        if what:
            return what, None
        e = getattr(e, "orig", None) or e.__cause__ or e.__context__
    return None


LOST = {"OperationalError", "InterfaceError"}  # PEP 249's classes for a connection refused, closed or broken


def connection_lost(e: BaseException | None) -> str | None:
    """The driver's own line when a database connection failing is behind `e` (refused, closed by a restart, the
    server shutting down or starting up), anywhere in its chain (MLflow's MlflowException wrapping SQLAlchemy's
    error wrapping the driver's); None for anything else, also for SQLite's errors (a locked or full file, never a
    connection) and a full disk (disk_fault says that one)."""
    if disk_fault(e):
        return None
    seen, found = set(), None
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if type(e).__module__.split(".")[0] == "sqlite3":
            return None
        if isinstance(e, StoreLost):  # an earlier loss this one was raised while handling: not this one's cause
            break
        if getattr(e, "connection_invalidated", False) is True or LOST & {c.__name__ for c in type(e).__mro__}:
            found = e  # the deepest wins: the driver's own words
        e = getattr(e, "orig", None) or e.__cause__ or e.__context__
    return one_line(found) if found is not None else None


def store_lost(e: BaseException | None) -> StoreLost | None:
    """The StoreLost behind `e`, anywhere in its chain (Lightning or a library may have wrapped it), else None."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, StoreLost):
            return e
        e = e.__cause__ or e.__context__
    return None
