"""Argument types for the command lines (``queue_system`` and ``sim``).

Each is a function argparse calls on the text of a flag (or of an
environment variable used as its default): it returns the value, or raises
``ArgumentTypeError`` with a message argparse prints beside the flag's
name, before anything starts. Nothing heavy is imported here, so a command
line that needs only these starts fast.
"""

from __future__ import annotations

import argparse
import math
import re


def within(kind, low, high, low_open=False):
    """An argparse type: a number of ``kind`` from ``low`` to ``high`` (finite)."""
    def parse(text):
        value = kind(text)
        if not (low < value if low_open else low <= value) or not value <= high:
            bound = f"more than {low:g}" if low_open else f"at least {low:g}"
            raise argparse.ArgumentTypeError(f"must be {bound} and at most {high:g}, not {text}")
        return value
    parse.__name__ = kind.__name__  # argparse names it in "invalid int value"
    return parse


def positive(kind, most=10 ** 9):
    return within(kind, 0, most, low_open=True)


def short_text(text):
    """An argparse type: a name or key of 1 to 200 characters, as the API takes them."""
    if not 1 <= len(text) <= 200:
        raise argparse.ArgumentTypeError(f"must be 1 to 200 characters, not {text!r}")
    return text


SIZE_UNITS = {"": 1, "b": 1, "k": 2 ** 10, "kb": 10 ** 3, "kib": 2 ** 10, "m": 2 ** 20,
              "mb": 10 ** 6, "mib": 2 ** 20, "g": 2 ** 30, "gb": 10 ** 9, "gib": 2 ** 30}
DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_AMOUNT = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*([a-z]*)\s*$")


def _amount(text: str, units: dict, what: str) -> float:
    match = _AMOUNT.match(text.lower())
    if match is None or match.group(2) not in units:
        names = ", ".join(unit for unit in units if unit)
        raise argparse.ArgumentTypeError(f"must be {what}: a number and a unit ({names}), "
                                         f"such as 10{list(units)[2]}, not {text!r}")
    value = float(match.group(1)) * units[match.group(2)]
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is too large")
    return value


def byte_size(text: str) -> int:
    """An argparse type: a size such as ``1048576``, ``16K``, ``256MiB`` or ``1GB``."""
    return int(_amount(text, SIZE_UNITS, "a size in bytes"))


def duration(text: str) -> float:
    """An argparse type: seconds, such as ``30``, ``10s``, ``15m``, ``12h`` or ``7d``."""
    return _amount(text, DURATION_UNITS, "a duration")


def or_none(kind):
    """An argparse type: ``kind``, or ``none`` (the word) for no value."""
    def parse(text):
        return None if text.strip().lower() in ("none", "") else kind(text)
    parse.__name__ = getattr(kind, "__name__", "value")
    return parse
