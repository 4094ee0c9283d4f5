"""Connection limits: what a client may cost the server before it sends a request.

A web framework only sees a request once its headers have arrived. Before
that moment, the server has already spent memory and a file descriptor on
the connection, and nothing in the app can refuse it. So these limits live
in the HTTP protocol itself (a subclass of uvicorn's httptools protocol):

* ``max_header_bytes``: the request line and headers are kept in memory
  until they are complete; without a cap, one client sends a 300 MB header
  and the server stores it. Beyond the cap: ``431``, and the connection closes.
* ``header_timeout``: a "slowloris" client sends its headers one byte now and
  then, or nothing at all, and holds a connection for ever; a few thousand of
  them use up the server's file descriptors and honest clients are refused.
  A request's headers must arrive within this time, else the connection closes
  (with a ``408`` if part of a request came).
* ``body_timeout``: once the headers are in, the same trick works with a body
  that never ends. The whole body must arrive within this time, else ``408``.
  The clock stops when the body is complete: what the app then does (a long
  poll holds a claim for up to 60 s) is not the client's slowness.
* ``idle_timeout``: a kept-alive connection may sit silent between requests
  this long (uvicorn's ``timeout_keep_alive``).
* ``max_connections``: a cap on open connections, so the server never runs out
  of file descriptors. A new connection beyond it pushes out the connection that
  has waited longest without finishing its headers (the likeliest slowloris);
  if every connection is busy with a real request, the newcomer gets ``503``.

The clocks: a connection's first request must finish its headers within
``header_timeout`` of the connection opening (sending nothing counts as slow);
each later request on a kept-alive connection gets ``header_timeout`` from its
first byte, after at most ``idle_timeout`` of silence. Time during which the
server itself stopped reading (it is still answering an earlier, pipelined
request) is not held against the client.

Cost: headers are counted per chunk received, not per byte, and each connection
keeps one timer that is moved only when a deadline comes closer, so a request
costs a few attribute updates.
"""

from __future__ import annotations

import http
import json
import logging
import time

import uvicorn

from ..limits import Limits

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    HAVE_HTTPTOOLS = True
except ImportError:  # httptools is not installed: server_config falls back to h11
    from asyncio import Protocol as HttpToolsProtocol  # only so the class below is defined
    HAVE_HTTPTOOLS = False

log = logging.getLogger("queue_system.server")

# What a connection is doing, as far as the limits are concerned.
WAITING = 0   # open, no byte of its first request yet (header_timeout runs from the connect)
IDLE = 1      # between requests: the app may be answering; uvicorn's keep-alive times silence
HEAD = 2      # part of a request line or headers received (header_timeout)
BODY = 3      # headers complete, body not yet (body_timeout)
CLOSED = 4    # closed, refused, or handed to a WebSocket protocol

INF = float("inf")
SLACK = 0.005     # seconds: timers may fire this much early (uvloop rounds to milliseconds)
SPARE_FDS = 64    # files the process needs besides its connections (listener, store, logs)


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above.

    ``server_config`` makes a subclass per server that sets the four class
    attributes below from its ``Limits``."""

    max_header_bytes = 16 * 1024
    header_timeout = 10.0
    body_timeout = 30.0
    max_connections = 1000

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._phase = CLOSED
        self._head_bytes = 0     # bytes of the current request's head, counted per chunk
        self._deadline = 0.0     # when the current phase's time runs out (time.monotonic)
        self._timer = None       # the connection's one timer handle ...
        self._timer_at = INF     # ... and when it fires (INF: no timer)

    # -- connections ------------------------------------------------------------------

    def connection_made(self, transport):
        super().connection_made(transport)  # joins self.connections
        if len(self.connections) > self.max_connections and not self._drop_slowest():
            self._answer(503, f"the server has {self.max_connections} open connections, its "
                              "limit (--max-connections); try again later")
            return
        self._phase = WAITING
        self._start_clock(self.header_timeout)

    def connection_lost(self, exc):
        self._stop()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self):
        self._stop()  # the WebSocket protocol takes the connection over
        super().handle_websocket_upgrade()

    def _drop_slowest(self) -> bool:
        """Close the connection that costs most for least, if any: first the one that has
        waited longest for its headers, then one kept alive with nothing in progress (a
        client can hold one with a request every --idle-timeout), then the slowest body.
        A request the app is working on (a worker's long poll) is never dropped."""
        victim, worst = None, None
        for other in self.connections:
            phase = getattr(other, "_phase", CLOSED)
            if other is self or phase == CLOSED or other.transport.is_closing():
                continue
            if phase in (WAITING, HEAD):
                rank = (0, other._deadline)
            elif phase == IDLE and not other.pipeline and (
                    other.cycle is None or other.cycle.response_complete):
                rank = (1, other._deadline)  # its last request's: the earliest idled longest
            elif phase == BODY:
                rank = (2, other._deadline)
            else:
                continue
            if worst is None or rank < worst:
                victim, worst = other, rank
        if victim is None:
            return False
        victim._stop()
        victim.transport.close()
        return True

    # -- reading: count the head's bytes until it is complete ----------------------------

    def data_received(self, data):
        while self._phase < BODY:  # this chunk starts in (or before) a request's head
            room = self.max_header_bytes - self._head_bytes
            if len(data) <= room:
                self._head_bytes += len(data)
                break
            # Parse only what fits. on_message_complete resets _head_bytes, so if it is
            # still full afterwards the same head is unfinished: it is too large.
            self._head_bytes = self.max_header_bytes
            data = memoryview(data)
            if room:
                super().data_received(data[:room])
                if self._phase == CLOSED or self.transport.is_closing():
                    return
            if self._phase < BODY and self._head_bytes == self.max_header_bytes:
                self._answer(431, f"the request line and headers exceed "
                                  f"{self.max_header_bytes} bytes (--max-header-bytes)")
                return
            data = data[room:]
        super().data_received(data)

    def on_message_begin(self):
        super().on_message_begin()
        if self._phase != WAITING:  # the first request keeps the clock of the connect
            self._start_clock(self.header_timeout)
        self._phase = HEAD

    def on_headers_complete(self):
        super().on_headers_complete()
        self._phase = BODY
        self._start_clock(self.body_timeout)

    def on_message_complete(self):
        super().on_message_complete()
        if self._phase != CLOSED:
            self._phase = IDLE  # the app's time is its own; the next byte starts a head
            self._head_bytes = 0

    # -- the clock --------------------------------------------------------------------------

    def _start_clock(self, timeout: float) -> None:
        """Give the current phase ``timeout`` seconds; move the timer only if it is later."""
        self._deadline = deadline = time.monotonic() + timeout
        if deadline < self._timer_at:
            self._set_timer(deadline)

    def _set_timer(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self.loop.call_later(at - time.monotonic(), self._time_is_up)

    def _time_is_up(self) -> None:
        self._timer, self._timer_at = None, INF
        phase = self._phase
        if phase in (IDLE, CLOSED) or self.transport.is_closing():
            return
        now = time.monotonic()
        if self.flow.read_paused:
            # The server stopped reading (it is answering an earlier request on this
            # connection), so the client is not late: it gets a fresh allowance.
            self._deadline = now + (self.body_timeout if phase == BODY else self.header_timeout)
        if now < self._deadline - SLACK:  # the deadline moved since the timer was set
            self._set_timer(self._deadline)
        elif phase == WAITING:
            self._stop()
            self.transport.close()  # nothing was sent: nothing to answer
        elif phase == HEAD:
            self._answer(408, f"the request line and headers did not arrive within "
                              f"{self.header_timeout:g} s (--header-timeout)")
        else:
            self._answer(408, f"the body did not arrive within {self.body_timeout:g} s "
                              "of the headers (--body-timeout)")

    def _stop(self) -> None:
        self._phase = CLOSED
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, INF

    # -- answering ---------------------------------------------------------------------------

    def _answer(self, status: int, message: str) -> None:
        """Answer ``{"error": message}`` with ``status`` and close, if the response stream
        is free; if an earlier request on this connection is still being answered,
        just close."""
        cycle = self.cycle  # the current request's in BODY, the previous one's before
        if self._phase == BODY:
            free = not self.pipeline and (cycle is None or not cycle.response_started)
        else:
            free = cycle is None or cycle.response_complete
        self._stop()
        if free:
            body = json.dumps({"error": message}).encode()
            head = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n".encode()]
            for name, value in self.server_state.default_headers:
                head.append(name + b": " + value + b"\r\n")
            head.append(b"content-type: application/json\r\n"
                        b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
            self.transport.write(b"".join(head) + body)
        self.transport.close()


def fit_file_limit(max_connections: int) -> int:
    """Raise the soft limit on open files so ``max_connections`` sockets fit, if the
    hard limit allows; return how many connections fit (``max_connections`` or fewer)."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to raise
        return max_connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + SPARE_FDS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return max_connections
    fits = max(1, soft - SPARE_FDS)
    log.warning("max_connections lowered from %d to %d: this process may open only "
                "%d files (ulimit -n)", max_connections, fits, soft)
    return fits


def server_config(app, *, host: str, port: int, limits: Limits,
                  **uvicorn_kwargs) -> uvicorn.Config:
    """A ``uvicorn.Config`` for ``app`` whose HTTP protocol enforces the connection
    limits in ``limits``; other keyword arguments go to ``uvicorn.Config``. The
    caller runs it with ``uvicorn.Server(config)`` (or a subclass)."""
    max_connections = fit_file_limit(limits.max_connections)
    if HAVE_HTTPTOOLS:
        protocol = type("LimitedHttpProtocol", (LimitedHttpProtocol,), {
            "max_header_bytes": limits.max_header_bytes,
            "header_timeout": limits.header_timeout,
            "body_timeout": limits.body_timeout,
            "max_connections": max_connections,
        })
        return uvicorn.Config(app, host=host, port=port, http=protocol,
                              timeout_keep_alive=limits.idle_timeout, **uvicorn_kwargs)
    # Without httptools, uvicorn's h11 protocol caps the head's size (answering 400,
    # not 431) and times idle keep-alive connections, but a slow head or body holds
    # its connection for ever and nothing caps the number of connections.
    return uvicorn.Config(app, host=host, port=port, http="h11",
                          h11_max_incomplete_event_size=limits.max_header_bytes,
                          timeout_keep_alive=limits.idle_timeout, **uvicorn_kwargs)
