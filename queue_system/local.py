"""The system on this machine: a server and workers as processes on 127.0.0.1.

The demo's picture, made a tool: the labs, the tests and the benchmarks all
need a real producer API and real worker processes, on free loopback ports,
that they can stop politely (SIGTERM), kill (SIGKILL) and restart, and that
never outlive them. ``LocalSystem`` starts ``python -m queue_system``
processes, keeps each one's log in a file, and stops whatever still runs:

- when the ``with`` block ends, even on an exception (a failing cell);
- when the Python that started them exits (``atexit``: a notebook's kernel
  shut down or restarted);
- when it dies without a word (SIGKILL): on Linux each child asks the kernel
  to send it SIGTERM when its parent goes (``PR_SET_PDEATHSIG``).

    with LocalSystem() as system:
        system.start_server("--backoff", "none")
        system.start_worker("worker-1", "--min-work", "0.05", "--max-work", "0.2")
        system.client.submit("email", {"to": "user@example.com"})
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

from .client import QueueClient, ServerUnreachable
from .localhost import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent  # the folder that holds queue_system/

_PR_SET_PDEATHSIG = 1
# What atexit stops: anything with close(), held until it is closed. A strong set: a
# system whose name was reused (a lab's set-up cell run twice) is still stopped at exit.
_running: set = set()


def _find_prctl():
    """Linux's prctl, looked up once here: after fork() the child must not load libraries."""
    if not sys.platform.startswith("linux"):
        return None  # not Linux (on Windows CDLL(None) fails): atexit and close() still stop
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None  # not Linux: atexit and close() still stop the children


_prctl = _find_prctl()


def _die_with_parent() -> None:  # pragma: no cover (runs in the child, before exec)
    """In the child: ask Linux for SIGTERM when the parent dies (a polite stop)."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@atexit.register
def _stop_all() -> None:
    for system in list(_running):
        system.close()


def project_environment(env: Optional[dict] = None) -> dict:
    """This process's environment with ``env`` on top, and the project first on
    ``PYTHONPATH``, before any path ``env`` gives (a folder of your own handlers, say)."""
    environment = dict(os.environ, **(env or {}))
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + [p for p in [environment.get("PYTHONPATH")] if p])
    return environment


def spawn(argv: List[str], log_path: Path, env: Optional[dict] = None) -> subprocess.Popen:
    """Start ``argv`` in the project folder, with ``project_environment(env)``, its output
    appended to ``log_path``; it dies with us."""
    # Linux sends the parent-death signal when the *thread* that forked ends, not the
    # process: a child started from a passing thread would be stopped with it. Only
    # the main thread lives as long as the process; other threads rely on atexit.
    tie = _prctl is not None and threading.current_thread() is threading.main_thread()
    with open(log_path, "a") as log:
        return subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env=project_environment(env),
                                preexec_fn=_die_with_parent if tie else None)


def stop_all(processes: List[subprocess.Popen], grace: float) -> None:
    """SIGTERM to each, then SIGKILL whatever still runs ``grace`` seconds later."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class ProcessGroup:
    """Named processes, each with its log ``NAME.log`` in ``folder``, stopped at exit.

    What ``LocalSystem`` and ``local_compose.LocalCompose`` share: a name runs once
    at a time, ``log(name)`` reads what it printed, and ``close()`` (which each
    defines) runs at the end of a ``with`` block and at interpreter exit."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.processes: Dict[str, subprocess.Popen] = {}
        _running.add(self)

    def _spawn(self, name: str, argv: List[str], env: Optional[dict] = None) -> subprocess.Popen:
        old = self.processes.get(name)
        if old is not None and old.poll() is None:
            raise RuntimeError(f"{name} is already running (pid {old.pid})")
        process = spawn(argv, self.folder / f"{name}.log", env)
        self.processes[name] = process
        return process

    def log(self, name: str) -> str:
        """Everything process ``name`` printed so far."""
        path = self.folder / f"{name}.log"
        return path.read_text() if path.exists() else ""

    def close(self, grace: float = 0) -> None:
        _running.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalSystem(ProcessGroup):
    """Starts ``python -m queue_system`` processes on 127.0.0.1; stops them all on exit.

    ``folder`` holds the SQLite file and one log per process (``log(name)``:
    "server", or a worker's id); by default a new temporary folder. ``port``
    defaults to a free one. ``store`` is the server's store URL, by default
    that SQLite file (``redis://...``: several systems may share one queue).
    """

    def __init__(self, folder=None, *, port: Optional[int] = None, store: Optional[str] = None):
        super().__init__(Path(folder or tempfile.mkdtemp(prefix="queue-lab-")))
        self.db = str(self.folder / "queue.db")
        self.store = store or f"sqlite:///{self.db}"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: Optional[subprocess.Popen] = None
        self.client = QueueClient(self.url)

    # -- starting ---------------------------------------------------------------------

    def start(self, name: str, args: List[str], env: Optional[dict] = None) -> subprocess.Popen:
        """Run ``python -m queue_system ARGS`` as ``name``, its output appended to ``name``.log."""
        return self._spawn(name, [sys.executable, "-m", "queue_system", *args], env)

    def start_server(self, *extra: str, wait: bool = True,
                     env: Optional[dict] = None) -> subprocess.Popen:
        """The producer API on this system's port and store (a restart reuses both);
        ``env`` adds environment variables (``QUEUE_TOKEN``...)."""
        self.server = self.start("server", ["serve", "--port", str(self.port),
                                            "--store", self.store, "--log-level", "info",
                                            *extra], env)
        if wait:
            self.wait_healthy()
        return self.server

    def wait_healthy(self, timeout: float = 30) -> dict:
        """Wait until the server answers ``/health``; fails early if it exited."""
        def healthy():
            if self.server.poll() is not None:
                raise RuntimeError(f"the server exited with code {self.server.returncode}:\n"
                                   + self.log("server")[-2000:])
            try:
                return self.client.health()
            except ServerUnreachable:
                return None
        return wait_for(healthy, timeout, "the server to answer /health")

    def start_worker(self, worker_id: str, *extra: str, env: Optional[dict] = None):
        """A worker named ``worker_id`` against this system's server."""
        return self.start(worker_id, ["worker", "--url", self.url, "--id", worker_id, *extra],
                          env=env)

    # -- stopping ---------------------------------------------------------------------

    def stop(self, process: subprocess.Popen, sig: int = signal.SIGTERM,
             timeout: float = 30) -> int:
        """Send ``sig`` (SIGTERM: a polite stop) and wait for the exit code."""
        if process.poll() is None:
            process.send_signal(sig)
        return process.wait(timeout=timeout)

    def kill(self, process: subprocess.Popen, sig: Optional[int] = None,
             timeout: float = 30) -> int:
        """Stop a process without warning (SIGKILL: as a crash or a power cut would), or
        send it ``sig``. Windows has no SIGKILL: ``Popen.kill()`` is TerminateProcess there,
        which gives the process no more chance to finish or give anything back."""
        if sig is None:
            if process.poll() is None:
                process.kill()
            return process.wait(timeout=timeout)
        return self.stop(process, sig, timeout)

    def close(self, grace: float = 5) -> None:
        """Stop every process still running: the workers (so that they can still report what
        they finish), then the server. SIGTERM first; SIGKILL whatever is left after ``grace``
        seconds (0: at once)."""
        stop_all([p for p in self.processes.values() if p is not self.server], grace)
        stop_all([self.server] if self.server is not None else [], grace)
        self.client.close()
        super().close()

    # -- looking ----------------------------------------------------------------------

    def running(self) -> List[str]:
        """The names of the processes still running."""
        return [name for name, p in self.processes.items() if p.poll() is None]
