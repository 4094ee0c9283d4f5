"""Start the server: open the store, build the queue and the app, run uvicorn."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Optional

import uvicorn

from ..backoff import Backoff
from ..dead_letter_log import DeadLetterLog
from ..queue import TaskQueue
from ..stores import open_store
from .app import create_app


class CleanStopServer(uvicorn.Server):
    """uvicorn, but a SIGTERM/SIGINT that ended a graceful shutdown exits 0.

    uvicorn re-raises the signal once it has shut down, so the process would
    look killed (exit 143 in Docker) although it stopped cleanly."""

    @contextlib.contextmanager
    def capture_signals(self):
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def serve(host: str = "127.0.0.1", port: int = 3000, db: str = "queue.db",
          lease_seconds: float = 15.0, backoff: Backoff = Backoff(),
          max_body: int = 1024 * 1024, log_level: str = "info",
          dead_letter_log: Optional[str] = None) -> None:
    """Serve the queue until SIGINT/SIGTERM. ``db`` is a SQLite file, or ``memory``;
    ``dead_letter_log`` a file that gets a JSON line per dead-lettered task."""
    if db != "memory":
        folder = os.path.dirname(os.path.abspath(db))
        os.makedirs(folder, exist_ok=True)
    try:
        dead_letters = DeadLetterLog(dead_letter_log) if dead_letter_log else None
    except OSError as exc:
        raise OSError(f"cannot write the dead-letter log {dead_letter_log!r}: "
                      f"{exc.strerror or exc}") from None
    store = open_store(db)
    queue = TaskQueue(store, lease_seconds=lease_seconds, backoff=backoff)
    app = create_app(queue, max_body=max_body,
                     store_name="memory" if db == "memory" else f"sqlite:{db}",
                     dead_letter_log=dead_letters)
    logging.basicConfig(level=log_level.upper(), format="%(message)s")
    logging.getLogger("queue_system").setLevel(log_level.upper())
    print(f"Producer API listening on http://{host}:{port} "
          f"(store: {db}, lease {lease_seconds:g}s, docs at /docs)", flush=True)
    if dead_letters is not None:
        print(f"Dead-lettered tasks are logged to {dead_letter_log}", flush=True)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=2)
    server = CleanStopServer(config)
    try:
        server.run()
    finally:
        store.close()
        if dead_letters is not None:
            dead_letters.close()
    if not server.started:  # e.g. the port was taken: uvicorn said why
        raise SystemExit(1)
    print("Producer API stopped", flush=True)
