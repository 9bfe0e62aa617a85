"""Types for the command line's values: each checks its value as argparse reads it, so a bad number or an empty
list is one line naming the flag, before anything is loaded or written."""
from __future__ import annotations

import argparse
import math


def count(text: str) -> int:
    """An integer >= 1."""
    return _int(text, 1)


def index(text: str) -> int:
    """An integer >= 0."""
    return _int(text, 0)


def port(text: str) -> int:
    value = _int(text, 1)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is 1 to 65535 (got {text})")
    return value


def host(text: str) -> str:
    """A host name or IP address to bind."""
    if not text or not all(c.isalnum() or c in ".-:[]" for c in text) or not text.isascii():
        raise argparse.ArgumentTypeError(f"expected a host name or IP address (got {text!r})")
    return text


def positive(text: str) -> float:
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number (got {text!r})") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0 (got {text})")
    return value


def names(text: str) -> list[str]:
    """A comma-separated, non-empty list of names."""
    items = [t for t in text.replace(" ", ",").split(",") if t]
    if not items:
        raise argparse.ArgumentTypeError("an empty list; name at least one (leave the flag out for all)")
    return items


def lengths(text: str) -> list[int]:
    """A comma-separated, non-empty list of integers >= 1."""
    return [_int(t, 1) for t in names(text)]


def _int(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer (got {text!r})") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"needs at least {low} (got {value})")
    return value


def jobs(text: str) -> str:
    """--jobs: `auto` or an integer >= 1."""
    if text != "auto" and not text.lstrip("-").isdigit():
        raise argparse.ArgumentTypeError(f"expected auto or an integer (got {text!r})")
    return text if text == "auto" else str(_int(text, 1))
