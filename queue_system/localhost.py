"""Running the system's processes on this machine: free ports, and waiting.

The demo, the end-to-end tests and the benchmarks all start a server and
workers as processes on 127.0.0.1; these are the two small things they all
need.
"""

from __future__ import annotations

import socket
import time


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether nothing listens on ``port`` of 127.0.0.1 right now."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def dashboard_address(port: int, host: str = "127.0.0.1") -> str:
    """Where a browser finds the dashboard of a server bound to ``host``: this machine's
    own name for a server on the loopback or on every interface (Docker publishes it)."""
    local = host in ("0.0.0.0", "::", "::1", "localhost") or host.startswith("127.")
    return f"http://{'localhost' if local else host}:{port}/"


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    """Call ``predicate`` until it returns something true, and return that.

    Raises ``TimeoutError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
