"""Start the server: open the store, build the queue and the app, run uvicorn."""

from __future__ import annotations

import logging
import os

import uvicorn

from ..backoff import Backoff
from ..queue import TaskQueue
from ..stores import open_store
from .app import create_app


def serve(host: str = "127.0.0.1", port: int = 3000, db: str = "queue.db",
          lease_seconds: float = 15.0, backoff: Backoff = Backoff(),
          max_body: int = 1024 * 1024, log_level: str = "info") -> None:
    """Serve the queue until SIGINT/SIGTERM. ``db`` is a SQLite file, or ``memory``."""
    if db != "memory":
        folder = os.path.dirname(os.path.abspath(db))
        os.makedirs(folder, exist_ok=True)
    store = open_store(db)
    queue = TaskQueue(store, lease_seconds=lease_seconds, backoff=backoff)
    app = create_app(queue, max_body=max_body,
                     store_name="memory" if db == "memory" else f"sqlite:{db}")
    logging.basicConfig(level=log_level.upper(), format="%(message)s")
    logging.getLogger("queue_system").setLevel(log_level.upper())
    print(f"Producer API listening on http://{host}:{port} "
          f"(store: {db}, lease {lease_seconds:g}s, docs at /docs)", flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                    timeout_graceful_shutdown=2)
    finally:
        store.close()
