"""The handler the chaos test's workers run (``--handlers chaos_handlers:HANDLERS``).

It does a little work (a few ms, now and then up to ~100 ms), fails some
attempts, and records every execution in a file of its own worker, so that
the test can count, after the run, the tasks that ran more than once: one
line when the handler begins, one when it ends, appended and flushed line
by line (a SIGKILL loses no line already written). Where and as whom it
writes come from the environment the test gives the worker:

    CHAOS_LOG_DIR    the folder of the execution logs
    CHAOS_WORKER_ID  this worker's name: its log is CHAOS_LOG_DIR/NAME.executions

A line is tab-separated: ``start|ok|fail  TASK_ID  WORKER  PID  ATTEMPTS``.
Whether an attempt fails, and how long it works, depend only on the task's
id and its attempt number; a task whose payload says ``poison`` always
fails, so the dead letter has something in it whatever the draw.
"""

from __future__ import annotations

import os
import random
import threading
import time

FAILURE_RATE = 0.1

_worker = os.environ.get("CHAOS_WORKER_ID", f"pid-{os.getpid()}")
_folder = os.environ.get("CHAOS_LOG_DIR", ".")
_lock = threading.Lock()
_log = None


class ChaosFailure(Exception):
    """An attempt that fails on purpose."""


def _record(event: str, task) -> None:
    global _log
    with _lock:  # the worker's threads share the file
        if _log is None:
            os.makedirs(_folder, exist_ok=True)
            _log = open(os.path.join(_folder, f"{_worker}.executions"), "a", encoding="utf-8")
        _log.write(f"{event}\t{task.id}\t{_worker}\t{os.getpid()}\t{task.attempts}\n")
        _log.flush()


def chaos(task):
    _record("start", task)
    rng = random.Random(f"{task.id}:{task.attempts}")
    seconds = rng.uniform(0.002, 0.03) if rng.random() < 0.9 else rng.uniform(0.03, 0.1)
    time.sleep(seconds)
    poison = isinstance(task.payload, dict) and task.payload.get("poison")
    if poison or rng.random() < FAILURE_RATE:
        _record("fail", task)
        raise ChaosFailure("poison" if poison else "chaos says no")
    _record("ok", task)
    return {"worker": _worker, "slept": round(seconds, 4)}


HANDLERS = {None: chaos}
