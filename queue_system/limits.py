"""Every limit the server enforces, stated once, with its default.

A queue on a classroom network meets mistakes and mischief: a body nested
thousands of levels deep, a header of 300 MB, a client that opens a
connection and never finishes its request, a claim of every task under a
day-long lease. Each of these has a limit here; the server enforces them
at its edge (before the request reaches the queue) and answers with a 4xx
that names the limit. ``serve --help`` and the README list them, with the
flag that changes each one.

Fixed limits (the length of ids and types, the format of dates and tokens)
are part of the API's schema and cannot be changed; ``Limits`` holds the
settings.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Optional

MIB = 1024 * 1024

# Fixed: part of the schema (see server/schemas.py), the same for every server.
MAX_ID_LENGTH = 200          # worker ids, idempotency keys, task types
# Python's json module and SQLite's JSON both give up near 1,000 levels; a payload
# nested deeper than this ceiling is refused whatever --max-depth says, so nothing
# the server stores is ever too deep to read back.
DEPTH_CEILING = 200
# A token (QUEUE_TOKEN, QUEUE_WORKER_TOKEN) travels in an HTTP header: visible ASCII, no spaces.
TOKEN_TEXT = re.compile(r"^[\x21-\x7e]+$")


def limit(default, unit: str, help: str):
    """A field of ``Limits``: its default, its unit (how the flag reads it), what it bounds."""
    return dataclasses.field(default=default, metadata={"unit": unit, "help": help})


@dataclass(frozen=True)
class Limits:
    """The server's limits. Each field is a ``serve`` flag and an environment variable:
    ``max_depth`` is ``--max-depth`` and ``MAX_DEPTH``."""

    # Requests
    max_body: int = limit(MIB, "bytes", "largest request body (413 beyond)")
    max_depth: int = limit(32, "count", "deepest nesting of a payload or a result (400 beyond)")
    max_header_bytes: int = limit(16 * 1024, "bytes",
                                  "largest request line and headers together (431 beyond)")
    header_timeout: float = limit(10.0, "seconds", "time to send a request's line and headers "
                                                   "(the connection is closed after)")
    body_timeout: float = limit(30.0, "seconds",
                                "time to send a request's body once its headers are in (408)")
    idle_timeout: float = limit(5.0, "seconds",
                                "time a kept-alive connection may sit idle before it is closed")
    max_connections: int = limit(1000, "count", "open connections; beyond, the one that has "
                                                "waited longest for its headers is dropped")
    # Workers
    max_claim: int = limit(100, "count", "most tasks one claim may take (400 beyond)")
    max_lease: float = limit(3600.0, "seconds", "longest lease a claim or heartbeat may ask "
                                                "for (400 beyond)")
    # The queue and the disk
    capacity: Optional[int] = limit(None, "count", "most tasks waiting, pending or scheduled "
                                                   "(503 with Retry-After beyond); none: no limit")
    min_free_disk: int = limit(256 * MIB, "bytes", "free space kept on the store's disk "
                                                   "(507 with Retry-After for new work below)")
    retention: Optional[float] = limit(None, "seconds", "age at which finished tasks are "
                                                        "purged; none: kept for ever")

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None and field.default is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"limit {field.name} must be a number, zero or more, "
                                 f"not {value!r}")
        if not 1 <= self.max_depth <= DEPTH_CEILING:
            raise ValueError(f"max_depth must be from 1 to {DEPTH_CEILING}")
        if self.max_claim < 1 or self.max_connections < 1 or self.max_body < 1:
            raise ValueError("max_claim, max_connections and max_body must be at least 1")
        if self.max_header_bytes < 1024:  # a browser's usual headers alone take ~500 bytes
            raise ValueError("max_header_bytes must be at least 1K")
        if min(self.header_timeout, self.body_timeout, self.idle_timeout) <= 0 \
                or self.max_lease < 1:
            raise ValueError("timeouts must be more than 0 seconds, and max_lease at least 1")

    def replace(self, **changes) -> "Limits":
        return dataclasses.replace(self, **changes)


DEFAULT_LIMITS = Limits()
