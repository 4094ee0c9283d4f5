"""queue_system on a machine without POSIX signals (Windows), checked here on Linux.

Windows has SIGTERM and SIGINT, but no SIGKILL, SIGHUP, SIGUSR1...; no process
groups (os.killpg, start_new_session) and no preexec_fn. The demo, the worker and
LocalSystem must import and run there: what they send is SIGTERM (which
``Popen.send_signal`` turns into TerminateProcess on Windows) or ``Popen.kill()``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

from live import ROOT

POSIX_ONLY = ("SIGKILL", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGCHLD",
              "SIGSTOP", "SIGCONT", "SIGPIPE")


def test_every_module_imports_without_the_posix_only_signals(tmp_path):
    code = textwrap.dedent(f"""
        import importlib, os, pkgutil, signal
        for name in {POSIX_ONLY!r}:
            delattr(signal, name)
        for name in ("killpg", "setsid", "getpgid"):
            delattr(os, name)
        import queue_system
        for module in pkgutil.walk_packages(queue_system.__path__, "queue_system."):
            if module.name != "queue_system.__main__":
                importlib.import_module(module.name)
        print("ok")
    """)
    answer = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env={"PYTHONPATH": str(ROOT)})
    assert answer.returncode == 0 and answer.stdout.split() == ["ok"], answer.stderr


def test_no_posix_only_signal_or_process_group_in_the_package():
    """Used at run time they would crash there (``getattr(signal, NAME, None)`` is fine)."""
    names = "|".join(POSIX_ONLY)
    forbidden = re.compile(rf"\bsignal\.({names})\b|\bos\.(killpg|setsid|getpgid)\b"
                           r"|\bstart_new_session\b")
    found = []
    for path in sorted((ROOT / "queue_system").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if forbidden.search(code):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []


def test_the_parent_death_signal_is_asked_for_on_linux_only(monkeypatch):
    from queue_system import local
    monkeypatch.setattr(sys, "platform", "win32")
    assert local._find_prctl() is None  # and no preexec_fn: spawn passes None
    monkeypatch.setattr(sys, "platform", "darwin")
    assert local._find_prctl() is None


def test_kill_is_popen_kill_by_default(tmp_path):
    """``LocalSystem.kill`` with no signal is ``Popen.kill()``: SIGKILL here, and
    TerminateProcess on Windows, where ``signal.SIGKILL`` does not exist."""
    from queue_system.local import LocalSystem
    with LocalSystem(tmp_path) as system:
        sleeper = system._spawn("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
        assert system.kill(sleeper) == -9
        assert system.kill(sleeper) == -9  # already gone: its exit code again
