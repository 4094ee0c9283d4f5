"""A real ``redis-server`` for the tests: on a free loopback port, with its
append-only file in a temporary folder, synced before every answer.

Debian's ``redis-server`` (``apt-get install -y redis-server``; ``.ci/run``
does it). Without it, a test that needs Redis is skipped on a developer's
machine with the way to install it; under CI (the ``CI`` variable is set)
it runs, and fails if Redis is missing.
"""

import os
import shutil
import signal
import subprocess
import time

import pytest

from queue_system.localhost import free_port

REDIS_SERVER = shutil.which("redis-server")


def skip_without_redis() -> None:
    if REDIS_SERVER is None and not os.environ.get("CI"):
        pytest.skip("needs redis-server: apt-get install -y redis-server; "
                    "pip install -r requirements-dev.txt")


class RedisServer:
    """``redis-server --port P --bind 127.0.0.1 --dir FOLDER --appendonly yes --save ""``."""

    def __init__(self, folder):
        self.folder = str(folder)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self) -> "RedisServer":
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not installed: apt-get install -y redis-server")
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", self.folder, "--appendonly", "yes", "--appendfsync", "always",
             "--save", "", "--protected-mode", "yes", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        import redis
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 20
        while True:
            try:
                if client.ping():
                    break
            except (redis.ConnectionError, redis.BusyLoadingError):
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)
        client.close()
        return self

    def kill(self) -> None:
        """SIGKILL: no chance to write anything more."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def flush(self) -> None:
        import redis
        with redis.Redis(port=self.port) as client:
            client.flushall()
