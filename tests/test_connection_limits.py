"""The connection limits (server/connections.py), attacked over raw sockets.

Each server is a real uvicorn process built by ``server_config`` around the real
app, so its sockets can be counted and its file limit set. Socket timeouts only
keep a test from hanging: a test fails on them when a limit is not enforced.
"""

import contextlib
import json
import os
import select
import socket
import subprocess
import sys

import pytest

from queue_system.limits import Limits
from queue_system.localhost import free_port, wait_for
from queue_system.server import connections

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LAUNCH = r"""
import asyncio, json, resource, sys
import uvicorn
from queue_system import MemoryStore, TaskQueue
from queue_system.limits import Limits
from queue_system.server.app import create_app
from queue_system.server.connections import server_config

port, changes, fd_limit = int(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
if fd_limit:
    resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))
real_app = create_app(TaskQueue(MemoryStore()))

async def app(scope, receive, send):  # the real app, and a slow route that reads nothing
    if scope["type"] == "http" and scope["path"] == "/test/slow":
        await asyncio.sleep(1.5)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"0")]})
        return await send({"type": "http.response.body", "body": b""})
    await real_app(scope, receive, send)

config = server_config(app, host="127.0.0.1", port=port, limits=Limits(**changes),
                       log_level="warning", timeout_graceful_shutdown=1)
uvicorn.Server(config).run()
"""

HEALTH = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"


class Server:
    def __init__(self, port, pid):
        self.port, self.pid = port, pid

    def connect(self, timeout=5.0) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def sockets(self) -> int:
        """How many sockets the server process holds open."""
        count = 0
        for fd in os.listdir(f"/proc/{self.pid}/fd"):
            with contextlib.suppress(OSError):
                count += os.readlink(f"/proc/{self.pid}/fd/{fd}").startswith("socket:")
        return count


@contextlib.contextmanager
def running_server(fd_limit=0, **limits):
    port = free_port()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    process = subprocess.Popen([sys.executable, "-c", LAUNCH, str(port), json.dumps(limits),
                                str(fd_limit)], cwd=ROOT, env=env)
    try:
        server = Server(port, process.pid)

        def answers():
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}")
            with contextlib.suppress(OSError, EOFError), server.connect(1.0) as sock:
                sock.sendall(HEALTH)
                return Reader(sock).response()[0] == 200
        wait_for(answers, 20, "the server to answer")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Reader:
    """Reads HTTP/1.1 responses (with a Content-Length or none) off a socket."""

    def __init__(self, sock):
        self.sock, self.buffer = sock, b""

    def _more(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the server closed the connection")
        self.buffer += data

    def response(self):
        """(status, headers, body) of the next response."""
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {name.lower(): value.strip()
                   for name, value in (line.split(":", 1) for line in lines[1:])}
        length = int(headers.get("content-length", 0))
        while len(self.buffer) < length:
            self._more()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body

    def closed(self) -> bool:
        """Wait for the server to close the connection; True once it has (a reset counts)."""
        try:
            while True:
                self._more()
        except (EOFError, ConnectionResetError):
            return True


@pytest.fixture(scope="module")
def server():
    with running_server(max_header_bytes=16384, header_timeout=0.5, body_timeout=0.5,
                        idle_timeout=5) as server:
        yield server


def error_of(body: bytes) -> str:
    return json.loads(body)["error"]


# -- max_header_bytes ------------------------------------------------------------------

def test_a_huge_header_gets_431_long_before_it_is_all_sent(server):
    chunk, chunks = b"a" * 16384, 64  # 1 MiB of one header, sent a chunk at a time
    with server.connect() as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Big: ")
        sent = 0
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for _ in range(chunks):
                sock.sendall(chunk)
                sent += 1
                if select.select([sock], [], [], 0.2)[0]:
                    break  # the server answered
        reader = Reader(sock)
        status, headers, body = reader.response()
        assert status == 431
        assert headers["content-type"] == "application/json"
        assert "16384" in error_of(body) and "--max-header-bytes" in error_of(body)
        assert reader.closed()
    assert sent < chunks  # answered (or refused our bytes) before the end: not read whole


def test_headers_of_8_kb_still_work(server):
    with server.connect() as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Pad: " + b"p" * 8000 + b"\r\n"
                     + b"".join(b"X-Many-%d: %s\r\n" % (n, b"v" * 50) for n in range(20))
                     + b"\r\n")
        assert Reader(sock).response()[0] == 200


# -- header_timeout ----------------------------------------------------------------------

def test_half_a_request_line_is_answered_408_and_closed(server):
    with server.connect() as sock:
        sock.sendall(b"GET /hea")
        reader = Reader(sock)
        status, _, body = reader.response()
        assert status == 408 and "--header-timeout" in error_of(body)
        assert reader.closed()


def test_a_connection_that_sends_nothing_is_closed(server):
    with server.connect() as sock:
        reader = Reader(sock)
        assert reader.closed() and reader.buffer == b""


def test_headers_sent_in_pieces_within_the_timeout_are_served(server):
    with server.connect() as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        select.select([sock], [], [], 0.05)  # a pause shorter than header_timeout
        sock.sendall(b"Host: test\r\n\r\n")
        assert Reader(sock).response()[0] == 200


def answered_then_idle(sock) -> "Reader":
    """A kept-alive connection: one request answered, then twice header_timeout of silence."""
    reader = Reader(sock)
    sock.sendall(HEALTH)
    assert reader.response()[0] == 200
    assert not select.select([sock], [], [], 1.0)[0]
    return reader


def test_a_kept_alive_connection_may_idle_longer_than_the_header_timeout(server):
    # header_timeout counts from a request's first byte; silence is idle_timeout's (5 s).
    with server.connect() as sock:
        reader = answered_then_idle(sock)
        sock.sendall(HEALTH)
        assert reader.response()[0] == 200


def test_a_slow_request_after_an_idle_wait_on_a_kept_alive_connection_is_closed(server):
    with server.connect() as sock:
        reader = answered_then_idle(sock)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: te")  # and then too slow
        status, _, body = reader.response()
        assert status == 408 and "--header-timeout" in error_of(body)
        assert reader.closed()


# -- body_timeout ------------------------------------------------------------------------

def test_a_body_that_stops_short_gets_408(server):
    with server.connect() as sock:
        sock.sendall(b"POST /tasks HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n" + b'{"type": "')
        reader = Reader(sock)
        status, _, body = reader.response()
        assert status == 408 and "--body-timeout" in error_of(body)
        assert reader.closed()


def test_a_long_poll_outlasts_the_body_timeout(server):
    body = json.dumps({"worker_id": "w", "wait": 2}).encode()
    with server.connect(timeout=10) as sock:
        sock.sendall(b"POST /tasks/claim HTTP/1.1\r\nHost: test\r\nContent-Type: application/json"
                     b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        reader = Reader(sock)
        assert reader.response()[0] == 204  # no task came within the wait
        sock.sendall(HEALTH)  # and the connection is still good
        assert reader.response()[0] == 200


def test_a_body_the_server_is_not_reading_yet_is_not_timed(server):
    # uvicorn stops reading while it answers the request before a pipelined one, so that
    # one's body waits in the socket (here 1.5 s, three body timeouts): not the client's fault.
    task = json.dumps({"type": "email"}).encode()
    with server.connect() as sock:
        sock.sendall(b"GET /test/slow HTTP/1.1\r\nHost: test\r\n\r\n"
                     b"POST /tasks HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(task))
        select.select([sock], [], [], 0.2)  # so the body comes in a later read
        sock.sendall(task)
        reader = Reader(sock)
        assert [reader.response()[0] for _ in range(2)] == [200, 202]


# -- keep-alive and pipelining -------------------------------------------------------------

def test_heads_are_counted_one_request_at_a_time(server):
    # Chunks bigger than max_header_bytes that hold a body, or many small heads, are fine.
    task = json.dumps({"type": "big", "payload": {"text": "x" * 100_000}}).encode()
    many = b"".join(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Pad: %s\r\n\r\n" % (b"p" * 1000)
                    for _ in range(20))  # 20 KB of heads in one write
    with server.connect() as sock:
        reader = Reader(sock)
        sock.sendall(b"POST /tasks HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(task), task))
        assert reader.response()[0] == 202
        sock.sendall(many)
        assert [reader.response()[0] for _ in range(20)] == [200] * 20


def test_pipelined_and_kept_alive_requests_are_all_answered(server):
    task = json.dumps({"type": "email", "payload": {"to": "a@b.c"}}).encode()
    post = (b"POST /tasks HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(task), task))
    with server.connect() as sock:
        reader = Reader(sock)
        sock.sendall(HEALTH + post + HEALTH)  # pipelined, in one write
        assert [reader.response()[0] for _ in range(3)] == [200, 202, 200]
        for _ in range(2):  # then one at a time on the same connection
            sock.sendall(post)
            assert reader.response()[0] == 202


# -- max_connections -----------------------------------------------------------------------

@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts sockets in /proc")
def test_slow_connections_cannot_crowd_out_an_honest_client():
    # The server may open 128 files and keep 50 connections; 200 slowloris connections
    # would take every file descriptor (and the header timeout is too long to help)
    # if the oldest were not dropped for the newcomers.
    with running_server(fd_limit=128, max_connections=50, header_timeout=60) as server:
        slow = []
        try:
            for _ in range(200):
                slow.append(server.connect(timeout=5))
                with contextlib.suppress(OSError):  # already dropped: fine
                    slow[-1].sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Slow: ")
            wait_for(lambda: server.sockets() <= 50 + 5, 10,
                     "the server to drop slow connections down to max_connections")
            with server.connect(timeout=5) as sock:
                sock.sendall(HEALTH)
                assert Reader(sock).response()[0] == 200
            assert Reader(slow[0]).closed()  # the oldest slow connection was dropped
        finally:
            for sock in slow:
                sock.close()


def test_idle_kept_alive_connections_cannot_crowd_out_an_honest_client():
    """One cheap request per --idle-timeout keeps a connection alive: 50 of them filled
    a cap of 50, and the newcomer got 503. Idle ones now make way."""
    with running_server(max_connections=50, idle_timeout=60) as server:
        idle = []
        try:
            for _ in range(50):
                idle.append(server.connect(timeout=5))
                idle[-1].sendall(HEALTH)
                assert Reader(idle[-1]).response()[0] == 200
            with server.connect(timeout=5) as sock:
                sock.sendall(HEALTH)
                assert Reader(sock).response()[0] == 200
            assert sum(Reader(sock).closed() for sock in idle[:1]) == 1
        finally:
            for sock in idle:
                sock.close()


def test_when_every_connection_is_busy_a_newcomer_gets_503():
    claim = json.dumps({"worker_id": "w", "wait": 1}).encode()
    with running_server(max_connections=2) as server:
        busy = []
        try:
            for _ in range(2):  # each has sent a whole request: none is slow
                busy.append(server.connect(timeout=10))
                sock = busy[-1]
                sock.sendall(HEALTH)
                assert Reader(sock).response()[0] == 200
                sock.sendall(b"POST /tasks/claim HTTP/1.1\r\nHost: test\r\nContent-Length: %d"
                             b"\r\n\r\n%s" % (len(claim), claim))
            with server.connect() as sock:
                reader = Reader(sock)
                status, _, body = reader.response()
                assert status == 503 and "--max-connections" in error_of(body)
                assert reader.closed()
            assert [Reader(sock).response()[0] for sock in busy] == [204, 204]
        finally:
            for sock in busy:
                sock.close()


def test_the_file_limit_is_raised_for_max_connections(monkeypatch):
    resource = pytest.importorskip("resource")
    limit = {"now": (256, 4096)}
    monkeypatch.setattr(resource, "getrlimit", lambda which: limit["now"])
    monkeypatch.setattr(resource, "setrlimit", lambda which, value: limit.update(now=value))
    assert connections.fit_file_limit(1000) == 1000
    assert limit["now"] == (1000 + connections.SPARE_FDS, 4096)
    limit["now"] = (256, 512)  # the hard limit is too low: fewer connections fit
    assert connections.fit_file_limit(1000) == 512 - connections.SPARE_FDS
    assert limit["now"] == (512, 512)


def test_without_httptools_h11_caps_the_head(monkeypatch):
    monkeypatch.setattr(connections, "HAVE_HTTPTOOLS", False)
    config = connections.server_config(None, host="127.0.0.1", port=1,
                                       limits=Limits(max_header_bytes=4096, idle_timeout=3))
    assert (config.http, config.h11_max_incomplete_event_size, config.timeout_keep_alive) \
        == ("h11", 4096, 3)


def test_the_uvicorn_hooks_this_overrides_are_still_there():
    # connections.py overrides these methods and reads flow.read_paused; were uvicorn to
    # rename one, a limit would be bypassed silently (the tests above catch most of it,
    # but no test here speaks WebSocket).
    from uvicorn.protocols.http.flow_control import FlowControl
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    for hook in ("connection_made", "connection_lost", "data_received", "on_message_begin",
                 "on_headers_complete", "on_message_complete", "handle_websocket_upgrade"):
        assert hook in vars(HttpToolsProtocol), hook
    assert FlowControl(None).read_paused is False
