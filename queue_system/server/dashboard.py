"""What the classroom dashboard shows: the queue now, its last minutes, its workers.

The page (``static/``) asks ``GET /dashboard/state`` about once a second and
draws what it gets:

* the counts per status now, and their history over the last ``WINDOW``
  seconds, one point per second a page was watching (the history is kept
  by the server, so a page opened late still sees the burst it missed);
* the throughput (tasks completed per second) and the mean wait (from
  ready to handed out) over the same window, from the metrics' totals;
* the workers: each one's tasks in progress, since when, the lease time
  left, and when it was last heard from (``workers_seen``);
* the dead letter, with each task's error and attempts.

However many pages watch, the store is asked at most once per ``FRESH``
seconds: every page shares the last snapshot.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any, Callable, Dict, List, Optional

from ..queue import TaskQueue
from ..task import STATUSES, Task
from .metrics import QueueMetrics
from .workers_seen import WorkersSeen

WINDOW = 300.0        # seconds of history shown, and of the throughput and mean wait
FRESH = 0.5           # a snapshot younger than this is shared, not taken again
SAMPLE_EVERY = 1.0    # at most one history point per second
MAX_HELD = 200        # tasks in progress read (a burst claimed by prefetching workers)
MAX_WORKERS = 100     # workers listed (ids come from the network: made-up ones too)
MAX_DEAD = 100        # dead-lettered tasks listed, the latest first


class Dashboard:
    """Builds the dashboard's state from the queue, the metrics and the workers seen."""

    def __init__(self, queue: TaskQueue, metrics: QueueMetrics, workers: WorkersSeen,
                 run: Callable):
        self.queue, self.metrics, self.workers, self.run = queue, metrics, workers, run
        self.clock = queue.clock  # the queue's time: leases and history read alike
        self.started = self.clock()
        self.history: deque = deque()  # (time, counts per status)
        self.fresh = FRESH
        self._state: Optional[Dict[str, Any]] = None
        self._taken = 0.0  # time.monotonic() of the last snapshot
        self._lock = asyncio.Lock()

    async def state(self) -> Dict[str, Any]:
        async with self._lock:  # pages asking together share one snapshot
            if self._state is None or time.monotonic() - self._taken >= self.fresh:
                self._state = await self._snapshot()
                self._taken = time.monotonic()
            return self._state

    async def _snapshot(self) -> Dict[str, Any]:
        queue = self.queue

        def read():
            return (queue.stats(), queue.list("processing", None, MAX_HELD),
                    queue.dead_letter(MAX_DEAD, newest_first=True))
        counts, held, dead = await self.run(read)
        now = self.clock()
        now_counts = {status: counts[status] for status in STATUSES}
        if not self.history or now - self.history[-1][0] >= SAMPLE_EVERY:
            self.history.append((now, now_counts))
        while self.history and now - self.history[0][0] > WINDOW:
            self.history.popleft()
        # Over the window, or since the server started if that is shorter.
        throughput, mean_wait = self.metrics.recent.over(max(now - WINDOW, self.started), now)
        return {
            "now": now,
            "counts": now_counts,
            "window": WINDOW,
            "history": [{"t": t, **c} for t, c in self.history],
            "throughput": throughput,
            "mean_wait": mean_wait,
            **self._workers(held, now),
            "dead_letter": [dead_row(task) for task in dead],
            "dead_letter_count": counts["failed"],
        }

    def _workers(self, held: List[Task], now: float) -> Dict[str, Any]:
        """``workers``: one row per worker present (heard from within its lease, or
        waiting) or holding a task whose lease still runs, those holding tasks first, at
        most ``MAX_WORKERS``; ``workers_count``: how many there are in all."""
        def new_row(worker_id: str, last_heard: float, waiting: bool) -> Dict[str, Any]:
            return {"id": worker_id, "tasks": [], "since": None, "lease_left": None,
                    "last_heard": last_heard, "waiting": waiting}

        rows = {worker_id: new_row(worker_id, seen["last_heard"], seen["waiting"])
                for worker_id, seen in self.workers.present().items()}
        for task in held:
            if task.worker_id not in rows:  # not heard from lately, its lease still runs
                rows[task.worker_id] = new_row(task.worker_id, task.updated_at, False)
            row = rows[task.worker_id]
            row["tasks"].append({"id": task.id, "type": task.type})
            if row["since"] is None or task.claimed_at < row["since"]:
                row["since"] = task.claimed_at
            left = max(task.lease_expires_at - now, 0.0)
            row["lease_left"] = left if row["lease_left"] is None else min(row["lease_left"], left)
        ordered = sorted(rows.values(), key=lambda row: (not row["tasks"], row["id"]))
        return {"workers": ordered[:MAX_WORKERS], "workers_count": len(ordered)}


def dead_row(task: Task) -> Dict[str, Any]:
    return {"id": task.id, "type": task.type, "priority": task.priority, "error": task.error,
            "attempts": task.attempts, "finished_at": task.finished_at}
