"""Start the server: open the store, build the queue and the app, run uvicorn.

The server says at start who may use it: with ``QUEUE_TOKEN`` unset it is
open to whoever can reach its address, which by default is this machine
only (127.0.0.1).
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterable, Optional

import uvicorn

from ..backoff import Backoff
from ..dead_letter_log import DeadLetterLog
from ..errors import StoreUnavailable
from ..limits import DEFAULT_LIMITS, Limits
from ..localhost import dashboard_address
from ..queue import TaskQueue
from ..stores import open_store, store_url
from .access import Access
from .app import create_app
from .connections import server_config


class CleanStopServer(uvicorn.Server):
    """uvicorn, but a SIGTERM/SIGINT that ended a graceful shutdown exits 0.

    uvicorn re-raises the signal once it has shut down, so the process would
    look killed (exit 143 in Docker) although it stopped cleanly."""

    @contextlib.contextmanager
    def capture_signals(self):
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def serve(host: str = "127.0.0.1", port: int = 3000, store: str = "sqlite:///queue.db",
          lease_seconds: float = 15.0, backoff: Backoff = Backoff(),
          limits: Limits = DEFAULT_LIMITS, log_level: str = "info",
          dead_letter_log: Optional[str] = None, allowed_hosts: Iterable[str] = (),
          token: Optional[str] = None, worker_token: Optional[str] = None) -> None:
    """Serve the queue until SIGINT/SIGTERM. ``store`` is a store URL (``stores``: a
    SQLite file, ``memory://``, ``redis://...``; a bare path is a SQLite file);
    ``dead_letter_log`` a file that gets a JSON line per dead-lettered task. The
    tokens default to ``QUEUE_TOKEN`` and ``QUEUE_WORKER_TOKEN`` from the environment."""
    if lease_seconds > limits.max_lease:
        raise ValueError(f"the lease ({lease_seconds:g}s) is longer than --max-lease "
                         f"({limits.max_lease:g}s)")
    token = token or os.environ.get("QUEUE_TOKEN") or None
    worker_token = worker_token or os.environ.get("QUEUE_WORKER_TOKEN") or None
    access = Access.for_bind(host, token, worker_token, allowed_hosts)
    url = store_url(store)
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        os.makedirs(os.path.dirname(os.path.abspath(url[len("sqlite:///"):])), exist_ok=True)
    try:
        dead_letters = DeadLetterLog(dead_letter_log) if dead_letter_log else None
    except OSError as exc:
        raise OSError(f"cannot write the dead-letter log {dead_letter_log!r}: "
                      f"{exc.strerror or exc}") from None
    try:
        opened = open_store(url)
    except StoreUnavailable as exc:
        raise ValueError(f"cannot use the store {url}: {exc.__cause__ or exc}") from None
    queue = TaskQueue(opened, lease_seconds=lease_seconds, backoff=backoff,
                      capacity=limits.capacity)
    app = create_app(queue, limits=limits, dead_letter_log=dead_letters, access=access,
                     disk_folder=opened.folder)
    logging.basicConfig(level=log_level.upper(), format="%(message)s")
    logging.getLogger("queue_system").setLevel(log_level.upper())
    print(f"Producer API listening on http://{host}:{port} "
          f"(store: {opened.url}, lease {lease_seconds:g}s, docs at /docs)", flush=True)
    print(f"Dashboard: {dashboard_address(port, host)}", flush=True)
    if dead_letters is not None:
        print(f"Dead-lettered tasks are logged to {dead_letter_log}", flush=True)
    print(access_notice(access, host), flush=True)
    config = server_config(app, host=host, port=port, limits=limits, log_level="warning",
                           access_log=False, timeout_graceful_shutdown=2)
    server = CleanStopServer(config)
    try:
        server.run()
    finally:
        opened.close()
        if dead_letters is not None:
            dead_letters.close()
    if not server.started:  # e.g. the port was taken: uvicorn said why
        raise SystemExit(1)
    print("Producer API stopped", flush=True)


def access_notice(access: Access, host: str) -> str:
    """One line at start: who may use this server."""
    if access.token and access.worker_token:
        return ("Access: QUEUE_TOKEN to submit and read tasks, QUEUE_WORKER_TOKEN to work on "
                "them, replay and purge")
    if access.token:
        return "Access: every route but /health needs QUEUE_TOKEN"
    local = host == "localhost" or host == "::1" or host.startswith("127.")
    where = "to this machine only" if local else f"on {host}, to anyone who can reach it"
    what = ("submit and read tasks (working on them needs QUEUE_WORKER_TOKEN)"
            if access.worker_token else "submit, read and complete tasks")
    line = f"Access: open (no QUEUE_TOKEN) {where}: anyone may {what}"
    return line if local else f"WARNING: {line}. Set QUEUE_TOKEN to close it."
