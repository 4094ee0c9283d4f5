"""The handlers of a live run: each attempt does what the scenario says an attempt does.

A worker started by ``sim live`` runs ``--handlers sim.live_handlers``. An
attempt sleeps for a duration drawn from its task kind's service
distribution (divided by the speed-up), and fails with the scenario's
failure probability, as a simulated attempt does. The draws are seeded by
the run's seed, the task and the attempt number, so a rerun plays the same
attempts whichever worker takes them.

Each attempt also writes two lines to the worker's attempt log (JSON, one
per line): when it started, and when it ended and how. After the run those
lines become the simulation's attempt records; an attempt with no end was
cut short, by a crash (the runner knows when it killed the worker) or by
the end of the run.

Set by the runner, in the environment: ``SIM_LIVE_SCENARIO`` (the
scenario as JSON, unscaled), ``SIM_LIVE_SPEEDUP`` and ``SIM_LIVE_ATTEMPTS``
(this worker process's attempt log).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from typing import Any, Dict, Optional

from queue_system.task import Task

from .scenario import Scenario


class AttemptFailed(Exception):
    """The scenario's random failure of an attempt (``failure_p``)."""


class LiveWork:
    """The handler for every task type of a live run."""

    def __init__(self, scenario: Scenario, speedup: float, log_path: str):
        self.scenario, self.speedup = scenario, speedup
        self.kinds = scenario.kinds()
        self._log = open(log_path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def draw(self, row: int, kind: int, attempt: int) -> tuple:
        """(seconds of scenario time, fails?) for this attempt of task ``row``."""
        rng = random.Random(f"{self.scenario.seed}:live:{row}:{attempt}")
        seconds = self.kinds[kind].service.sampler(rng)()
        return seconds, rng.random() < self.scenario.failure_p

    def write(self, line: Dict[str, Any]) -> None:
        with self._lock:  # whole lines, flushed: a SIGKILL loses at most the line not yet written
            self._log.write(json.dumps(line) + "\n")
            self._log.flush()

    def __call__(self, task: Task) -> Any:
        payload = task.payload if isinstance(task.payload, dict) else {}
        if "row" not in payload or "kind" not in payload:
            raise ValueError(f"task {task.id} is not a task of a live run (no row, kind)")
        row, kind, run = payload["row"], payload["kind"], payload.get("run")
        seconds, fails = self.draw(row, kind, task.attempts)
        self.write({"run": run, "row": row, "attempt": task.attempts, "worker": task.worker_id,
                    "start": time.time()})
        time.sleep(seconds / self.speedup)
        self.write({"run": run, "row": row, "attempt": task.attempts, "end": time.time(),
                    "ok": not fails})
        if fails:
            raise AttemptFailed("the scenario's failure_p drew a failure")
        return {"row": row}


def _from_environment() -> Optional[Dict[Optional[str], LiveWork]]:
    path = os.environ.get("SIM_LIVE_SCENARIO")
    if path is None:
        return None
    with open(path, encoding="utf-8") as f:
        scenario = Scenario.from_json(f.read())
    work = LiveWork(scenario, float(os.environ["SIM_LIVE_SPEEDUP"]),
                    os.environ["SIM_LIVE_ATTEMPTS"])
    return {None: work}


# Read by ``python -m queue_system worker --handlers sim.live_handlers``. None outside a
# live run: the worker then says this module defines no handlers.
HANDLERS = _from_environment()
