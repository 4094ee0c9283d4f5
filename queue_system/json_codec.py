"""JSON in and out, fast: orjson, with the standard library as a safety net.

Payloads and results are any JSON value, and they are encoded on every
submit, claim and response, so the fast encoder matters. orjson refuses a
few values that Python's json module accepts (integers beyond 64 bits,
which a client may send, and nesting deeper than 254 levels); those are
written by the json module instead. Reading back, orjson would turn such
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
    except TypeError:  # an integer beyond 64 bits, or very deep nesting
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def loads(text: str) -> Any:
    if _LONG_DIGITS.search(text):
        return json.loads(text)  # exact big integers (and a little slower)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # what only the json module reads (deep nesting, NaN)
        return json.loads(text)
