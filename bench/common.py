"""What both benchmarks share: starting and stopping real processes.

Every process is started by us, remembered, and killed (by its own pid) when
the ``Processes`` context ends, whatever happened in between.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from queue_system.client import QueueClient, ServerUnreachable  # noqa: E402
from queue_system.localhost import free_port, wait_for  # noqa: E402,F401

PYTHON = sys.executable






class Processes:
    """Starts processes with their output in ``folder/NAME.log``; kills them all on exit."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.started = []

    def start(self, name: str, args, cwd=ROOT, env=None) -> subprocess.Popen:
        with open(self.folder / f"{name}.log", "ab") as log:
            process = subprocess.Popen(args, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                       env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})))
        self.started.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def stop(self, process, sig=signal.SIGTERM, timeout: float = 10) -> None:
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for process in reversed(self.started):
            if process.poll() is None:
                process.kill()
                process.wait()


class OurServer:
    """``python -m queue_system serve`` on a free port, with its client."""

    def __init__(self, procs: Processes, store: str, *extra: str):
        """``store``: a store URL, or the path of a SQLite file."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs = procs
        self.process = procs.start("server", [PYTHON, "-m", "queue_system", "serve",
                                              "--port", str(self.port), "--store", store,
                                              "--log-level", "warning", *extra])
        self.client = QueueClient(self.url)

        def healthy():
            if self.process.poll() is not None:
                raise RuntimeError("the server died:\n" + procs.log("server"))
            try:
                return self.client.health()
            except ServerUnreachable:
                return None
        wait_for(healthy, 30, "the server to answer /health", 0.05)

    def start_worker(self, worker_id: str, *extra: str, cwd=ROOT, env=None) -> subprocess.Popen:
        return self.procs.start(worker_id, [PYTHON, "-m", "queue_system", "worker",
                                            "--url", self.url, "--id", worker_id,
                                            "--log-level", "warning", *extra], cwd=cwd, env=env)


class DurableRedis:
    """Debian's redis-server on a free loopback port, in ``folder``, with durable settings
    (its append-only file synced before every answer), and no rewrite of that file while
    a benchmark times it. ``close()`` stops it."""

    def __init__(self, folder: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(folder), "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--loglevel", "warning", "--auto-aof-rewrite-percentage", "0"],
            stdout=subprocess.DEVNULL)
        import redis  # only the benchmarks that use Redis need it
        self._errors = redis.ConnectionError
        self.client = redis.Redis(port=self.port)
        wait_for(self._ping, 20, "redis-server")
        config = self.client.config_get("append*")
        self.settings = f"appendonly {config['appendonly']}, appendfsync {config['appendfsync']}"

    def _ping(self):
        try:
            return self.client.ping()
        except self._errors:
            return False

    def flush(self):
        self.client.flushall()

    def close(self):
        self.client.close()
        self.process.terminate()
        self.process.wait(30)


def summary(values):
    """(best, median) of a list of rates."""
    return max(values), statistics.median(values)
