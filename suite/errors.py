"""The one exception type the CLI turns into a one-line message and exit code 2."""


class UserError(Exception):
    """A mistake the user can fix (bad config, unknown name, unreachable server): no traceback.

    The message is kept to one line: a newline or other control character the user typed is shown escaped.
    """

    def __init__(self, message: str):
        super().__init__("".join(c if c.isprintable() else repr(c)[1:-1] for c in str(message)))


_STOPPING = []


def interrupt(signum=None, frame=None):
    """The SIGTERM handler (and SIGINT's where it was ignored): remembered, then raised as KeyboardInterrupt, as
    Ctrl-C is. Remembered because a library may swallow the exception (torch.export wraps whatever its trace
    raises): `stop_if_interrupted()` raises it again at the next safe point."""
    _STOPPING.append(signum)
    raise KeyboardInterrupt


def on_sigterm():
    """SIGTERM takes Ctrl-C's path; an interrupt a library swallowed while ignoring exceptions (a weakref callback,
    a __del__) is not printed as a traceback but kept for `stop_if_interrupted()`."""
    import signal
    import sys

    def unraisable(u):
        if not isinstance(u.exc_value, KeyboardInterrupt):
            sys.__unraisablehook__(u)

    signal.signal(signal.SIGTERM, interrupt)
    sys.unraisablehook = unraisable


def stop_if_interrupted():
    if _STOPPING:
        raise KeyboardInterrupt
