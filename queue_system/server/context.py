"""What every route shares: the queue, its limits, and the one way to reach the store.

A route never touches the store itself: it hands a function to ``run``,
which the group committer runs in the store thread and commits with the
other requests of its batch (``group_commit``). ``ServerContext`` holds
that committer, the signal that wakes long-polling workers, the metrics,
the workers seen, and the small steps several routers take alike
(announce an outcome, refuse a body nested too deep).

One context per app; ``lifespan`` starts its store thread when the server
starts and stops it when the server stops.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Callable, Optional, Tuple

from ..dead_letter_log import DeadLetterLog
from ..errors import InvalidTask
from ..json_codec import nested_deeper_than
from ..limits import Limits
from ..queue import TaskQueue
from ..task import Task
from . import schemas
from .group_commit import GroupCommitter, Outbox
from .dashboard import Dashboard
from .housekeeping import DiskGuard, purge_interval
from .long_poll import WaitingClaims, WorkSignal
from .metrics import QueueMetrics
from .workers_seen import WorkersSeen

log = logging.getLogger("queue_system.server")

PURGE_STEP = 1000  # finished tasks deleted per transaction
# The server's own sweep looks at least this often (seconds), and sooner when the store
# says a task falls due or a lease ends before: a GET changes nothing, so without it a
# task would read "scheduled" past its time until some worker asked for work.
SWEEP_EVERY = 1.0


class ServerContext:
    """The state of one running app, and the steps its routes share."""

    def __init__(self, queue: TaskQueue, limits: Limits, *,
                 dead_letter_log: Optional[DeadLetterLog] = None,
                 disk_folder: Optional[str] = None):
        self.queue, self.limits = queue, limits
        self.dead_letter_log = dead_letter_log
        self.disk = DiskGuard(disk_folder, limits.min_free_disk,
                              reusable_bytes=queue.store.reusable_bytes)
        # While the app runs (its event loop's): see lifespan.
        self.committer: Optional[GroupCommitter] = None
        self.waiting: Optional[WaitingClaims] = None
        self.signal: Optional[WorkSignal] = None
        self.metrics = QueueMetrics()
        self.workers = WorkersSeen(forget_after=queue.lease_seconds, clock=queue.clock)
        self.dashboard = Dashboard(queue, self.metrics, self.workers, self.run)

    # -- the store thread ---------------------------------------------------------------

    @asynccontextmanager
    async def lifespan(self, app):
        outbox = Outbox()
        # The queue tells of a dead letter and of a lease run out inside the operation; what
        # follows from it (a line in the log, a count) waits in the outbox for the commit.
        self.queue.on_dead_letter = lambda task: outbox.add(
            functools.partial(self._dead_lettered, task))
        self.queue.on_lease_expired = lambda task: outbox.add(
            functools.partial(self.metrics.on_lease_expired, task))
        self.waiting = WaitingClaims(self.queue, outbox)
        self.committer = GroupCommitter(self.queue.store, outbox=outbox,
                                        on_work=self.waiting.serve)
        self.signal = WorkSignal()
        retention = self.limits.retention
        loop = asyncio.get_running_loop()
        timers = [loop.create_task(self.sweep_for_ever())]
        if retention is not None:
            timers.append(loop.create_task(self.purge_for_ever(retention)))
        try:
            yield
        finally:
            for timer in timers:
                timer.cancel()
            self.committer.close()
            self.queue.on_dead_letter = self.queue.on_lease_expired = None

    def _dead_lettered(self, task: Task) -> None:
        self.metrics.on_dead_letter(task)
        if self.dead_letter_log is not None:
            self.dead_letter_log.write(task)

    async def run(self, fn: Callable, *args, makes_work: bool = False) -> Any:
        """``fn(*args)`` in the store thread, committed. With ``makes_work``, the work it
        makes is handed to waiting workers in the same commit (``long_poll``)."""
        return await self.committer.run(fn, *args, makes_work=makes_work)

    def wake_workers(self) -> None:
        self.signal.notify()

    # -- steps several routes take ----------------------------------------------------------

    def submitted(self, tasks: list) -> None:
        """New tasks were stored: count them, and wake the workers waiting for work."""
        if tasks:
            self.metrics.on_submitted(tasks)
            self.wake_workers()

    def check_depth(self, value: Any, what: str) -> None:
        """Refuse a payload or result nested deeper than ``--max-depth``."""
        check_depth(value, self.limits.max_depth, what)

    def announce(self, task: Task) -> None:
        """Log what a reported attempt did, and wake the workers if the task is back."""
        log_outcome(task)
        if task.status in ("pending", "scheduled"):
            self.wake_workers()

    async def finish(self, step: Callable, task_id: str, *args, ok: Optional[bool] = None,
                     makes_work: bool = False) -> Task:
        """A worker's report on one task (complete, fail, or release: ``ok`` None),
        committed, announced and counted."""
        task = await self.run(step, task_id, *args, makes_work=makes_work)
        self.announce(task)
        self.workers.heard(task.worker_id)
        if ok is not None:
            self.metrics.on_reported([(task, ok)])
        return task

    async def purge(self, older_than: float) -> int:
        """Purge in bounded steps: the store is never held long, others' requests go between."""
        deleted = 0
        while True:
            step = await self.run(self.queue.purge, older_than, PURGE_STEP)
            deleted += step
            if step < PURGE_STEP:
                return deleted

    def _sweep_if_due(self) -> Tuple[int, Optional[float]]:
        """In the store thread: sweep if something fell due. Returns how many tasks became
        pending, and when to look again."""
        # (A sweep that finds nothing due costs the store one question, ``Store.due``.)
        swept = self.queue.sweep()
        return swept["promoted"] + swept["expired"], self.queue.next_wakeup()

    async def sweep_for_ever(self) -> None:
        """The server's own timer: due tasks become pending and expired leases are taken
        back even while no worker asks for work."""
        failing = False
        while True:
            try:
                back, wakeup = await self.run(self._sweep_if_due)
            except Exception:  # a store that failed is tried again at the next tick
                if not failing:  # said once per outage, not every second
                    log.exception("the timer's sweep failed; trying again every %gs",
                                  SWEEP_EVERY)
                failing, back, wakeup = True, 0, None
            else:
                if failing:
                    log.info("the timer's sweep works again")
                failing = False
            if back:
                self.wake_workers()  # tasks to hand out, as after a submit
            delay = SWEEP_EVERY if wakeup is None else wakeup - self.queue.clock()
            if delay <= 0 and not back:
                # Due, yet the sweep moved nothing: a lease that ends exactly now is still
                # valid (it expires just after), so do not spin on it: look again later.
                delay = SWEEP_EVERY
            await asyncio.sleep(min(SWEEP_EVERY, max(delay, 0.01)))

    async def purge_for_ever(self, retention: float) -> None:
        while True:
            await asyncio.sleep(purge_interval(retention))
            try:
                deleted = await self.purge(retention)
            except Exception:  # a failed purge is retried at the next tick
                log.exception("purging finished tasks failed")
                continue
            if deleted:
                log.info("[Queue] Purged %d tasks finished more than %gs ago", deleted, retention)


def log_outcome(task: Task) -> None:
    if task.status == "completed":
        log.info("[Queue] Completed task %s", task.id)
    elif task.status == "failed":
        log.warning("[Queue] Task %s failed permanently after %d retries: %s",
                    task.id, task.retries, task.error)
    elif task.retries:
        log.info("[Queue] Task %s failed, retrying (%d/%d)", task.id, task.retries,
                 task.max_retries)


def check_depth(value: Any, limit: int, what: str) -> None:
    """Refuse a payload or result nested deeper than ``limit`` (``--max-depth``)."""
    if value.__class__ in (dict, list) and nested_deeper_than(value, limit):
        raise InvalidTask(f"'{what}' is nested more than {limit} levels deep (--max-depth)")


def parse_execute_at(value) -> Optional[float]:
    """Seconds since the epoch, or an RFC 3339 time such as 2026-11-28T09:00:00Z."""
    if value is None or isinstance(value, (int, float)):
        return value
    problem = None
    if len(value) > 64 or not re.match(schemas.RFC_3339, value):
        problem = "not in the form 2026-11-28T09:00:00Z (date, time to the second, zone)"
    else:
        # Its four-digit year bounds it; a time already past means "now", as in seconds.
        try:
            return datetime.fromisoformat(value.upper()).timestamp()
        except ValueError as exc:
            problem = str(exc)  # such as a 13th month
    raise InvalidTask(f"'execute_at' {value[:64]!r} is not a valid time: {problem}; write seconds "
                      "since the epoch or an RFC 3339 time, such as 2026-11-28T09:00:00Z")
