"""Argument types for the command lines (``queue_system`` and ``sim``).

Each is a function argparse calls on the text of a flag (or of an
environment variable used as its default): it returns the value, or raises
``ArgumentTypeError`` with a message argparse prints beside the flag's
name, before anything starts. Nothing heavy is imported here, so a command
line that needs only these starts fast.
"""

from __future__ import annotations

import argparse


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
