"""Records: what happened to every task, kept small while the model runs.

Like a flight recorder, the simulation writes down each event as it
happens and is read only after landing. Hundreds of thousands of tasks
must not cost a Python object each, so the recorder keeps flat typed
arrays (``array.array``: 8 bytes a float, not ~60 for a boxed float in a
dict) and a task is a row number. Only at the end are the arrays turned
into pandas DataFrames:

* ``tasks``: one row per task: kind, type, priority, created, each attempt's
  start and end (``start_1``, ``end_1``...), attempts, final status, wait,
  time in system;
* ``attempts``: one row per attempt (task, worker, start, end, outcome);
* ``timeseries``: queue length (pending tasks), scheduled tasks, tasks in
  progress, busy workers and dead-lettered tasks, sampled at a fixed step.
"""

from __future__ import annotations

import math
from array import array
from typing import Dict, List, Sequence

import numpy as np
import pandas as pd

from queue_system.task import PRIORITIES

# Final status codes in the ``status`` array (one byte per task).
IN_SYSTEM, COMPLETED, DEAD, REFUSED = 0, 1, 2, 3
STATUS_NAMES = ("in_system", "completed", "dead_letter", "refused")

# Attempt outcomes.
OK, FAILED, CRASHED, UNFINISHED = 0, 1, 2, 3
OUTCOME_NAMES = ("completed", "failed", "crashed", "unfinished")

NAN = math.nan


class Recorder:
    """Flat arrays indexed by task row (the task's payload) and by attempt."""

    def __init__(self):
        # Per task.
        self.kind = array("H")      # index into Scenario.kinds()
        self.created = array("d")
        self.ready = array("d")     # execute_at when submitted: not due before this
        self.finished = array("d")  # completed, dead-lettered or refused; NaN while in the system
        self.status = bytearray()
        # Per attempt.
        self.att_task = array("l")
        self.att_worker = array("H")
        self.att_start = array("d")
        self.att_end = array("d")
        self.att_outcome = bytearray()
        # Time series.
        self.ts_time = array("d")
        self.ts_waiting = array("l")
        self.ts_scheduled = array("l")
        self.ts_processing = array("l")
        self.ts_busy = array("l")
        self.ts_dead = array("l")

    def task(self, kind: int, created: float, ready: float, finished: float,
             status: int) -> int:
        """A task arrives (or is refused): returns its row number, its id in the records."""
        row = len(self.created)
        self.kind.append(kind)
        self.created.append(created)
        self.ready.append(ready)
        self.finished.append(finished)
        self.status.append(status)
        return row

    def attempt(self, row: int, worker: int, start: float, end: float, outcome: int) -> None:
        self.att_task.append(row)
        self.att_worker.append(worker)
        self.att_start.append(start)
        self.att_end.append(end)
        self.att_outcome.append(outcome)

    def sample(self, now: float, waiting: int, scheduled: int, processing: int, busy: int,
               dead: int) -> None:
        self.ts_time.append(now)
        self.ts_waiting.append(waiting)
        self.ts_scheduled.append(scheduled)
        self.ts_processing.append(processing)
        self.ts_busy.append(busy)
        self.ts_dead.append(dead)

    def __len__(self) -> int:
        return len(self.created)

    # -- at the end: DataFrames ------------------------------------------------------------

    def attempts_frame(self) -> pd.DataFrame:
        """One row per attempt, by start time (they are logged when they end)."""
        start = np.frombuffer(self.att_start, dtype=np.float64)
        order = np.argsort(start, kind="stable")
        outcome = np.frombuffer(bytes(self.att_outcome), dtype=np.uint8)[order]
        return pd.DataFrame({
            "task": np.asarray(self.att_task, dtype=np.int64)[order],
            "worker": np.asarray(self.att_worker, dtype=np.int64)[order],
            "start": start[order],
            "end": np.frombuffer(self.att_end, dtype=np.float64)[order],
            "outcome": pd.Categorical.from_codes(outcome, categories=list(OUTCOME_NAMES)),
        }, copy=False)

    def tasks_frame(self, kinds: Sequence, attempts: pd.DataFrame) -> pd.DataFrame:
        """One row per task; ``kinds`` is ``Scenario.kinds()`` (type and priority per kind)."""
        n = len(self.created)
        kind = np.asarray(self.kind, dtype=np.int64)
        created = np.frombuffer(self.created, dtype=np.float64)
        ready = np.frombuffer(self.ready, dtype=np.float64)
        finished = np.frombuffer(self.finished, dtype=np.float64)
        status = np.frombuffer(bytes(self.status), dtype=np.uint8)
        type_names = _unique([k.type for k in kinds])
        type_code = np.array([type_names.index(k.type) for k in kinds], dtype=np.int64)
        priority_names = list(PRIORITIES)
        priority_code = np.array([priority_names.index(k.priority) for k in kinds], dtype=np.int64)
        types = pd.Categorical.from_codes(type_code[kind], categories=type_names)
        priority = pd.Categorical.from_codes(priority_code[kind], categories=priority_names,
                                             ordered=True)
        task_of = attempts["task"].to_numpy()
        start = attempts["start"].to_numpy()
        end = attempts["end"].to_numpy()
        n_attempts = np.bincount(task_of, minlength=n)
        served = np.bincount(task_of, weights=end - start, minlength=n)
        # Rank of each attempt within its task (1, 2, ...): attempts come by start time,
        # and a stable sort by task keeps that order inside each task.
        order = np.argsort(task_of, kind="stable")
        by_task = task_of[order]
        group_start = np.searchsorted(by_task, by_task, side="left")
        rank = np.empty(len(task_of), dtype=np.int64)
        rank[order] = np.arange(len(task_of)) - group_start + 1
        del order, by_task, group_start
        columns = {
            "kind": kind,
            "type": types,
            "priority": priority,
            "created": created,
            "ready": ready,
            "attempts": n_attempts,
            "status": pd.Categorical.from_codes(status, categories=list(STATUS_NAMES)),
            "finished": finished,
            "first_start": None,  # filled below, kept here for the column order
            "service": served,
            "time_in_system": finished - created,
            # Wait: the time from when the task was due (its execute_at) to its end, not
            # spent being served: queueing, backoff, waiting for a dead worker's lease to
            # end. A task scheduled an hour ahead has not "waited" that hour.
            "wait": finished - ready - served,
            "first_wait": None,
        }
        # Each attempt's start and end as columns start_1, end_1, start_2, ...
        for k in range(1, int(rank.max()) + 1 if len(rank) else 1):
            pick = rank == k
            s, e = np.full(n, NAN), np.full(n, NAN)
            s[task_of[pick]] = start[pick]
            e[task_of[pick]] = end[pick]
            columns[f"start_{k}"] = s
            columns[f"end_{k}"] = e
        first = columns.get("start_1", np.full(n, NAN))
        columns["first_start"] = first
        columns["first_wait"] = first - ready
        frame = pd.DataFrame(columns, copy=False)
        frame.index.name = "task"
        return frame

    def timeseries_frame(self) -> pd.DataFrame:
        return pd.DataFrame({
            "time": np.frombuffer(self.ts_time, dtype=np.float64),
            "queue_length": np.asarray(self.ts_waiting, dtype=np.int64),   # pending: due, waiting
            "scheduled": np.asarray(self.ts_scheduled, dtype=np.int64),    # not due yet (execute_at, backoff)
            "in_progress": np.asarray(self.ts_processing, dtype=np.int64),
            "busy_workers": np.asarray(self.ts_busy, dtype=np.int64),
            "dead_letter": np.asarray(self.ts_dead, dtype=np.int64),
        })


def _unique(values: List[str]) -> List[str]:
    seen: Dict[str, None] = {}
    for v in values:
        seen.setdefault(v, None)
    return list(seen)
