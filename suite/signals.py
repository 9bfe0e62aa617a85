"""Ctrl-C and SIGTERM: one path for both, never cutting a store call in half, and raised again at a safe point
when a library swallowed it."""
import threading

_STOPPING = []
_SHIELD = []  # store calls under way in the main thread


def interrupt(signum=None, frame=None):
    """The SIGTERM and SIGINT handler: remembered, then raised as KeyboardInterrupt, as Ctrl-C is. Remembered
    because a library may swallow the exception (torch.export wraps whatever its trace raises):
    `stop_if_interrupted()` raises it again at the next safe point. Inside a store call it waits for the call
    to return (see `uninterrupted`)."""
    _STOPPING.append(signum)
    if not _SHIELD:
        raise KeyboardInterrupt


def uninterrupted(call, *args, **kwargs):
    """`call(*args, **kwargs)` run to its end though Ctrl-C or SIGTERM arrives meanwhile; the interrupt is raised
    as it returns. An MLflow call cut in half leaves a database transaction open (on SQLite, a lock that the
    run's own KILLED status then waits on for ever), so store calls go through here."""
    if _SHIELD or threading.current_thread() is not threading.main_thread():  # handlers run in the main thread
        return call(*args, **kwargs)
    before = interrupts()
    _SHIELD.append(call)
    try:
        result = call(*args, **kwargs)
    except BaseException:
        if interrupted_since(before):  # the stop wins over the store's own error
            raise KeyboardInterrupt from None
        raise
    finally:
        _SHIELD.pop()
    if interrupted_since(before):
        raise KeyboardInterrupt
    return result


def interrupted_since(count: int) -> bool:
    return len(_STOPPING) > count


def interrupts() -> int:
    return len(_STOPPING)


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
