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
    """The machine failed us mid-run (a full or read-only disk): one line like a UserError, but exit 1, since
    what the command was doing did not finish; what had finished is kept."""


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
