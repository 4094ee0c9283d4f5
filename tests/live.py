"""Real processes for end-to-end tests: a server and workers on 127.0.0.1.

Each test starts what it needs on free ports and stops it before it ends
(the ``LiveSystem`` context manager kills whatever is still running).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from queue_system.client import QueueClient, ServerUnreachable
from queue_system.localhost import free_port, wait_for  # noqa: F401  (the tests import them from here)

ROOT = Path(__file__).resolve().parent.parent


class LiveSystem:
    """Starts ``python -m queue_system`` processes; stops them all on exit."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.db = str(self.folder / "queue.db")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes = []
        self.server = None
        self.client = QueueClient(self.url)

    def _start(self, args, name, env=None):
        log = open(self.folder / f"{name}.log", "a")
        environment = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
        process = subprocess.Popen([sys.executable, "-m", "queue_system", *args], cwd=ROOT,
                                   stdout=log, stderr=subprocess.STDOUT, env=environment)
        log.close()
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text()

    def start_server(self, *extra, wait=True):
        self.server = self._start(["serve", "--port", str(self.port), "--db", self.db,
                                   "--log-level", "warning", *extra], "server")
        if wait:
            self.wait_healthy()
        return self.server

    def wait_healthy(self, timeout: float = 30):
        def healthy():
            assert self.server.poll() is None, self.log("server")
            try:
                return self.client.health()
            except ServerUnreachable:
                return None
        wait_for(healthy, timeout, "the server to answer /health")

    def start_worker(self, worker_id, *extra, env=None):
        return self._start(["worker", "--url", self.url, "--id", worker_id, *extra],
                           worker_id, env=env)

    def kill(self, process, sig=signal.SIGKILL, timeout: float = 30):
        process.send_signal(sig)
        return process.wait(timeout=timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        self.client.close()
