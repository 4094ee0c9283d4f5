"""queue_system runs without the simulation's libraries.

The Docker image, and ``pip install .`` without the ``sim`` extra, have no SimPy,
NumPy, pandas or matplotlib. Here they are installed, so each check runs in a
Python that refuses to import them (a finder first on ``sys.meta_path``): every
module of queue_system imports, and a server and a worker started through the
command line do a task end to end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import httpx

from live import ROOT, free_port, wait_for
from queue_system.local import stop_all

BLOCKED = ("simpy", "numpy", "pandas", "matplotlib")

# Run before anything else in each child Python: the libraries cannot be imported,
# and each attempt is said on stderr (even one that a caller catches).
BOOTSTRAP = textwrap.dedent(f"""
    import sys

    class NoSimulationLibraries:
        blocked = {BLOCKED!r}

        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in self.blocked:
                print(f"blocked import: {{name}}", file=sys.stderr, flush=True)
                raise ImportError(f"{{name}} is blocked: queue_system must not need it")
            return None

    sys.meta_path.insert(0, NoSimulationLibraries())
""")

# `python -m queue_system ARGS`, under the block.
CLI = BOOTSTRAP + textwrap.dedent("""
    import runpy
    sys.argv = ["queue_system", *sys.argv[1:]]
    runpy.run_module("queue_system", run_name="__main__", alter_sys=True)
""")


def environment() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")


def blocked_python(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BOOTSTRAP + code], cwd=cwd,
                          env=environment(), capture_output=True, text=True, timeout=120)


def test_the_block_works(tmp_path):
    """Else the tests below would prove nothing: the libraries are installed here."""
    for library in BLOCKED:
        answer = blocked_python(f"import {library}", tmp_path)
        assert answer.returncode != 0 and f"blocked import: {library}" in answer.stderr
    answer = blocked_python("import sim.model", tmp_path)  # the simulation needs them
    assert answer.returncode != 0 and "blocked import" in answer.stderr


def test_every_module_of_queue_system_imports_without_them(tmp_path):
    answer = blocked_python(textwrap.dedent("""
        import importlib, pkgutil
        import queue_system
        names = ["queue_system"] + [m.name for m in pkgutil.walk_packages(
            queue_system.__path__, "queue_system.") if m.name != "queue_system.__main__"]
        for name in names:
            importlib.import_module(name)
        # The app itself, built as the server builds it (routes import lazily too).
        from queue_system import TaskQueue, MemoryStore
        from queue_system.server.app import create_app
        create_app(TaskQueue(MemoryStore()))
        leaked = sorted(n for n in sys.modules if n.partition(".")[0] in
                        NoSimulationLibraries.blocked)
        print("leaked:", leaked)
        print("imported:", " ".join(names))
    """), tmp_path)
    assert answer.returncode == 0, answer.stderr
    assert "blocked import" not in answer.stderr, answer.stderr
    assert "leaked: []" in answer.stdout.splitlines()
    [imported] = [line.split()[1:] for line in answer.stdout.splitlines()
                  if line.startswith("imported:")]
    assert {f"queue_system.{name}" for name in ("server", "server.app", "server.serve",
                                                "worker", "stores", "cli", "demo", "client",
                                                "local")} <= set(imported)


def test_a_server_and_a_worker_do_a_task_without_them(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_log, worker_log = tmp_path / "server.log", tmp_path / "worker.log"
    processes = []
    try:
        with open(server_log, "w") as log:
            server = subprocess.Popen(
                [sys.executable, "-c", CLI, "serve", "--host", "127.0.0.1", "--port", str(port),
                 "--store", f"sqlite:///{tmp_path / 'queue.db'}", "--log-level", "warning"],
                cwd=tmp_path, env=environment(), stdout=log, stderr=subprocess.STDOUT)
        processes.append(server)
        with httpx.Client(base_url=url, timeout=10) as http:
            def healthy():
                assert server.poll() is None, server_log.read_text()
                try:
                    return http.get("/health").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(healthy, 60, "the server's /health")
            with open(worker_log, "w") as log:
                processes.insert(0, subprocess.Popen(
                    [sys.executable, "-c", CLI, "worker", "--url", url, "--id", "worker-1",
                     "--min-work", "0.01", "--max-work", "0.02", "--failure-rate", "0"],
                    cwd=tmp_path, env=environment(), stdout=log, stderr=subprocess.STDOUT))
            answer = http.post("/task", json={"type": "email",
                                              "payload": {"to": "user@example.com"}})
            assert answer.status_code == 202
            task_id = answer.json()["taskId"]

            def completed():
                assert processes[0].poll() is None, worker_log.read_text()
                task = http.get(f"/tasks/{task_id}").json()
                return task if task["status"] == "completed" else None

            task = wait_for(completed, 60, "the task to be completed")
            assert task["worker_id"] == "worker-1"
    finally:
        stop_all(processes, grace=10)  # the worker first, then the server
    logs = server_log.read_text() + worker_log.read_text()
    assert "blocked import" not in logs, logs
    assert "[Worker worker-1] Processing task" in worker_log.read_text()
