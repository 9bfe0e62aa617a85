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
