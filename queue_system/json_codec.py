"""JSON in and out, fast: orjson, with the standard library as a safety net.

Payloads and results are any JSON value, and they are encoded on every
submit, claim and response, so the fast encoder matters. orjson refuses a
few values that Python's json module accepts (integers beyond 64 bits,
which a client may send); those are written by the json module instead.
Nesting deeper than orjson's 254 levels is refused (``ValueError``): the
json module could write it, but reading it back can exhaust Python's
stack, and a task that cannot be read is a task lost. (The HTTP API
refuses far shallower payloads, see ``limits``.) Reading back, orjson would turn such
an integer into a float without a word, so text holding a run of 19 digits
or more (perhaps such an integer) is read by the json module, which keeps
it exact: what was accepted comes back unchanged. (NaN and Infinity are
not JSON: the HTTP API refuses them in request bodies.)
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

# 2**63 has 19 digits: a shorter run of digits is never an integer orjson would round.
_LONG_DIGITS = re.compile(r"[0-9]{19}")


def dumps(value: Any) -> str:
    """``value`` as compact JSON text."""
    return dumps_bytes(value).decode()


def dumps_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError as exc:  # an integer beyond 64 bits, or very deep nesting
        if "ecursion" in str(exc):
            raise ValueError("a value nested deeper than 254 levels cannot be stored") from None
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Does ``value`` nest lists and objects more than ``limit`` levels deep?

    ``[]`` and ``{}`` are one level, ``[[1]]`` two, a number none. Walked with
    a stack of its own, not recursion, so no depth can break the check."""
    if value.__class__ not in (dict, list):
        return False
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if item.__class__ is dict else item
        for child in children:
            if child.__class__ is dict or child.__class__ is list:
                stack.append((child, depth + 1))
    return False


def loads(text: str) -> Any:
    if _LONG_DIGITS.search(text):
        return json.loads(text)  # exact big integers (and a little slower)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # what only the json module reads (deep nesting, NaN)
        return json.loads(text)
