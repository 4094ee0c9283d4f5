"""LocalSystem: the labs' server and workers never outlive what started them."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from queue_system.local import ROOT, LocalSystem
from queue_system.localhost import wait_for


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by a parent) is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_failing_block_still_stops_every_process(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with LocalSystem(tmp_path) as system:
            system.start_server()
            worker = system.start_worker("w1", "--min-work", "0", "--max-work", "0")
            wait_for(lambda: "Started" in system.log("w1"), 30, "the worker to start")
            pids = [system.server.pid, worker.pid]
            1 / 0  # a cell that fails
    assert not any(alive(pid) for pid in pids)
    assert system.running() == []


def test_a_killed_parent_takes_its_children_with_it(tmp_path):
    # The parent stands for a notebook's kernel that dies without a word (SIGKILL).
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from queue_system.local import LocalSystem
        from queue_system.localhost import wait_for
        system = LocalSystem({str(tmp_path)!r})
        system.start_server()
        system.start_worker("w1")
        wait_for(lambda: "Started" in system.log("w1"), 30, "the worker")
        print(system.server.pid, system.processes["w1"].pid, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(alive(pid) for pid in pids)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        wait_for(lambda: not any(alive(pid) for pid in pids), 30, "the children to stop")
    finally:
        parent.kill()
        parent.wait()


def test_an_interpreter_that_exits_stops_its_children(tmp_path):
    # A kernel shut down or restarted: atexit stops what is still running.
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from queue_system.local import LocalSystem
        system = LocalSystem({str(tmp_path)!r})
        system.start_server()
        print(system.server.pid, flush=True)
    """)
    answer = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    pid = int(answer.stdout.split()[0])
    assert not alive(pid)
    assert "Producer API stopped" in (tmp_path / "server.log").read_text()  # a polite stop


def test_a_name_cannot_run_twice_and_a_restart_reuses_port_and_database(tmp_path):
    with LocalSystem(tmp_path) as system:
        system.start_server()
        task = system.client.submit("email", {"to": "a@b.c"})
        with pytest.raises(RuntimeError, match="already running"):
            system.start_server()
        assert system.stop(system.server) == 0
        system.start_server()
        assert system.client.get(task.id).status == "pending"
        started = time.monotonic()
    assert time.monotonic() - started < 10


def test_a_system_no_longer_referenced_is_still_stopped_at_exit(tmp_path):
    # A lab's set-up cell run twice: the first system's name now points at the second.
    script = textwrap.dedent(f"""
        import gc, os, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from queue_system import local
        system = local.LocalSystem({str(tmp_path)!r})
        server = system.start_server()
        system = None
        gc.collect()
        local._stop_all()  # what atexit runs
        print(server.wait(timeout=30), flush=True)
    """)
    answer = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    assert answer.stdout.split() == ["0"], answer.stderr


def test_a_process_started_from_another_thread_outlives_that_thread(tmp_path):
    """Linux's parent-death signal follows the thread that forked: a server a helper
    thread started was stopped the moment that thread ended."""
    with LocalSystem(tmp_path) as system:
        starter = threading.Thread(target=system.start_server)
        starter.start()
        starter.join()
        time.sleep(1)
        assert system.server.poll() is None, system.log("server")
        assert system.client.health()["status"] == "ok"
