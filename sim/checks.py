"""Checks on what a scenario is made of, each refusal naming the field.

A scenario usually comes from a JSON file someone typed by hand: ``"3"``
for 3, ``true`` for 1, ``1e999`` (infinity), a misspelt key. Python would
accept some of these and fail much later, deep inside the run, with a
traceback that does not say which field was wrong (or never finish). So
every value is checked where it enters, and a bad one raises ``ValueError``
with a message that names it; the command line prints that message.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Optional

from queue_system.lifecycle import is_whole_number


def is_number(value) -> bool:
    """An int or a float, but not a bool (``True`` is an int to Python, not a rate)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def number(name: str, value, *, low: Optional[float] = None, high: Optional[float] = None,
           above: Optional[float] = None) -> float:
    """A finite number within the bounds given, as a float; else a ValueError naming ``name``.

    ``low``/``high`` are inclusive bounds, ``above`` an exclusive lower bound.
    """
    if not is_number(value) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be at least {low:g}, not {value!r}")
    if above is not None and not value > above:
        raise ValueError(f"{name} must be more than {above:g}, not {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be at most {high:g}, not {value!r}")
    return float(value)


def whole(name: str, value, *, low: Optional[int] = None, high: Optional[int] = None) -> int:
    """A whole number (an int, not a bool and not 3.0) within the bounds given."""
    if not is_whole_number(value):
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be at least {low:,}, not {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be at most {high:,}, not {value!r}")
    return value


def text(name: str, value) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, not {value!r}")
    return value


def mapping(where: str, data, allowed: Iterable[str]) -> dict:
    """``data`` as a dict, refused if it is not a JSON object or has a key not in ``allowed``.

    A misspelt key ("wrokers") would otherwise be ignored or end in a TypeError
    from a constructor: say which key, where, and what is allowed instead.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a JSON object ({{...}}), not {data!r}")
    allowed = list(allowed)
    unknown = sorted(str(key) for key in data if key not in allowed)
    if unknown:
        raise ValueError(f"unknown field(s) in {where}: {', '.join(unknown)} "
                         f"(allowed: {', '.join(allowed)})")
    return dict(data)


def sequence(where: str, data) -> list:
    """A JSON array (list or tuple), refused otherwise (a string is not a list of things)."""
    if not isinstance(data, (list, tuple)):
        raise ValueError(f"{where} must be a JSON array ([...]), not {data!r}")
    return list(data)


def inside(where: str, error: ValueError) -> ValueError:
    """The same refusal, prefixed with where it happened: ``producers[0].mix[1]: ...``."""
    return ValueError(f"{where}: {error}")
