"""JSON in and out, fast: orjson, with the standard library as a safety net.

Payloads and results are any JSON value, and they are encoded on every
submit, claim and response, so the fast encoder matters. orjson refuses a
few values that Python's json module accepts (integers beyond 64 bits,
which a client may send); for those we fall back to the json module, so no
payload that was accepted can fail later.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any) -> str:
    """``value`` as compact JSON text."""
    return dumps_bytes(value).decode()


def dumps_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # e.g. an integer beyond 64 bits
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # what only the json module writes (NaN, huge numbers)
        return json.loads(text)
