"""The task lifecycle: every rule of the queue, as pure transitions.

Each function takes a task, an event and the time ``now``, and returns the
task after the event, or raises if the event is not allowed. Nothing here
reads a clock, a store or the network, so the same rules serve the live
server (wall-clock time, SQLite) and the simulation (SimPy's clock, memory)::

    scheduled --(execute_at reached)--> pending --(claim)--> processing
    processing --(complete)--> completed
    processing --(fail, retries < max_retries)--> pending or scheduled (backoff)
    processing --(fail, retries reach max_retries)--> failed  (the dead letter)
    processing --(lease expires: the worker died)--> pending at once, or failed
    processing --(release: the worker gives it back)--> pending, no failure counted
    failed --(replay from the dead letter)--> pending, retries reset

``retries`` counts failures and a task whose ``retries`` reaches
``max_retries`` is dead-lettered: with ``max_retries=3`` a task fails at most
three times (so it runs at most three times, unless a forced stop cut a run
short), and if each attempt fails with probability p it ends in the dead
letter with probability p**3.
"""

from __future__ import annotations

import math
import random
from typing import Any, Optional

from .backoff import NO_BACKOFF, Backoff
from .errors import InvalidTask, TaskConflict
from .task import PRIORITIES, Task, changed

MAX_TYPE_LENGTH = 200
MAX_RETRIES_LIMIT = 1000

# The lifecycle as a graph: for each transition below, the (status before, status after)
# pairs it may produce (None: the task did not exist). The labs draw the lesson's state
# diagram from it; tests/test_lifecycle_graph.py drives every function from every status
# and checks that each pair it produces is listed here, and each pair listed is produced.
TRANSITIONS = {
    "new_task": {(None, "pending"), (None, "scheduled")},       # scheduled: execute_at ahead
    "promote": {("scheduled", "pending")},                      # execute_at reached
    "claim": {("pending", "processing")},
    "heartbeat": {("processing", "processing")},                # the lease is extended
    "complete": {("processing", "completed")},
    "fail": {("processing", "pending"), ("processing", "scheduled"),  # retried (backoff or not)
             ("processing", "failed")},                         # retries used up: dead letter
    "expire": {("processing", "pending"), ("processing", "failed")},  # the worker died
    "release": {("processing", "pending")},                     # given back by its worker
    "replay": {("failed", "pending")},                          # out of the dead letter
}


def new_task(task_id: str, type: str, payload: Any, now: float, priority: str = "normal",
             max_retries: int = 3, execute_at: Optional[float] = None,
             idempotency_key: Optional[str] = None) -> Task:
    """A new task: ``pending``, or ``scheduled`` when ``execute_at`` is in the future."""
    if not isinstance(type, str) or not type or type.isspace():
        raise InvalidTask("'type' must be a non-empty string, such as \"email\"")
    if len(type) > MAX_TYPE_LENGTH:
        raise InvalidTask(f"'type' is longer than {MAX_TYPE_LENGTH} characters")
    if priority not in PRIORITIES:  # a tuple: an unhashable value is refused, not a TypeError
        raise InvalidTask(f"'priority' must be one of {', '.join(PRIORITIES)}, not {priority!r}")
    if not is_whole_number(max_retries) or not 1 <= max_retries <= MAX_RETRIES_LIMIT:
        raise InvalidTask(f"'max_retries' must be a whole number from 1 to {MAX_RETRIES_LIMIT} "
                          "(a task whose failures reach it goes to the dead letter)")
    if execute_at is None:
        execute_at = float(now)  # the usual case: ready at once
    else:
        if isinstance(execute_at, bool) or not isinstance(execute_at, (int, float)) \
                or not math.isfinite(execute_at):
            raise InvalidTask("'execute_at' must be a time in seconds since the epoch")
        # A time already past means "as soon as possible": FIFO from now on.
        execute_at = max(float(execute_at), now)
    return Task(id=task_id, type=type, payload=payload,
                status="scheduled" if execute_at > now else "pending",
                priority=priority, created_at=now, execute_at=execute_at,
                max_retries=max_retries, updated_at=now, idempotency_key=idempotency_key)


def is_whole_number(value) -> bool:
    """An int, but not a bool (True is an int to Python, not a number of retries)."""
    return value.__class__ is int or (isinstance(value, int) and not isinstance(value, bool))


def promote(task: Task, now: float) -> Task:
    """A scheduled task whose time has come becomes pending."""
    if task.status != "scheduled" or task.execute_at > now:
        raise TaskConflict(f"task {task.id} is {task.status} until {task.execute_at}, not due")
    return changed(task, status="pending", updated_at=now, version=task.version + 1)


def claim(task: Task, now: float, worker_id: str, lease_id: str, lease_seconds: float) -> Task:
    """A worker takes a pending task under a lease that ends at ``now + lease_seconds``."""
    if task.status != "pending" or task.execute_at > now:
        raise TaskConflict(f"task {task.id} is {task.status}, it cannot be claimed")
    return changed(task, status="processing", attempts=task.attempts + 1, worker_id=worker_id,
                   lease_id=lease_id, lease_expires_at=now + lease_seconds, claimed_at=now,
                   updated_at=now, version=task.version + 1)


def check_lease(task: Task, now: float, lease_id: Optional[str]) -> None:
    """Refuse an action on a task the caller does not (or no longer) hold.

    ``lease_id=None`` acts on the current lease, as the lesson's routes do.
    A lease past its expiry is stale even before the queue notices it, so a
    slow worker can never overwrite a task that is about to go to another.
    """
    if task.status != "processing":
        raise TaskConflict(f"task {task.id} is {task.status}, not in progress")
    if lease_id is not None and lease_id != task.lease_id:
        raise TaskConflict(f"stale lease for task {task.id}: another worker holds it now")
    if lease_expired(task, now):
        raise TaskConflict(f"the lease on task {task.id} expired at {task.lease_expires_at:.3f}")


def lease_expired(task: Task, now: float) -> bool:
    """Whether the lease on a processing task has run out at ``now``: a lease ending
    exactly now still holds. The stores find expired leases by the same rule. (Only a
    processing task has a lease: for any other, ``lease_expires_at`` is None.)"""
    return now > task.lease_expires_at


def heartbeat_every(lease_seconds: float) -> float:
    """How often a holder renews a lease of ``lease_seconds``: every third of it, so that
    one renewal may be lost or late (a slow network, a busy server) and the next still
    comes in time. The live worker and the simulated one both follow it."""
    return lease_seconds / 3


def heartbeat(task: Task, now: float, lease_id: Optional[str], lease_seconds: float) -> Task:
    """The holder says "still working": the lease now ends ``lease_seconds`` from now."""
    check_lease(task, now, lease_id)
    return changed(task, lease_expires_at=now + lease_seconds, updated_at=now,
                   version=task.version + 1)


def complete(task: Task, now: float, lease_id: Optional[str], result: Any) -> Task:
    """The holder succeeded: the task is completed with its result."""
    check_lease(task, now, lease_id)
    return changed(task, status="completed", result=result, lease_id=None,
                   lease_expires_at=None, finished_at=now, updated_at=now,
                   version=task.version + 1)


def fail(task: Task, now: float, lease_id: Optional[str], error: Optional[str],
         backoff: Backoff, rng: random.Random) -> Task:
    """The holder failed: retry after the backoff delay, or dead-letter."""
    check_lease(task, now, lease_id)
    return _failed_attempt(task, now, error, backoff, rng)


def expire(task: Task, now: float, rng: random.Random) -> Task:
    """The lease ran out (the worker died or hung): it counts as a failed attempt.

    Unlike a reported failure, the task goes straight back to pending with no
    backoff: the worker failed, not the task, so another worker may start it
    at once (or it is dead-lettered if that was its last attempt)."""
    if task.status != "processing" or not lease_expired(task, now):
        raise TaskConflict(f"the lease on task {task.id} has not expired")
    error = f"lease expired: worker {task.worker_id} stopped responding"
    return _failed_attempt(task, now, error, NO_BACKOFF, rng)


def _failed_attempt(task: Task, now: float, error: Optional[str], backoff: Backoff,
                    rng: random.Random) -> Task:
    retries = task.retries + 1
    if retries >= task.max_retries:
        return changed(task, status="failed", retries=retries, error=error, lease_id=None,
                       lease_expires_at=None, finished_at=now, updated_at=now,
                       version=task.version + 1)
    execute_at = now + backoff.delay(retries, rng)
    return changed(task, status="scheduled" if execute_at > now else "pending",
                   retries=retries, error=error, execute_at=execute_at,
                   lease_id=None, lease_expires_at=None, updated_at=now,
                   version=task.version + 1)


def release(task: Task, now: float, lease_id: Optional[str], started: bool = False) -> Task:
    """The holder gives the task back (a worker shutting down, a claim whose client went
    away): no failure counted. A task given back unstarted was not attempted, so its claim
    no longer counts; one whose handler had started (a forced stop) keeps the attempt."""
    check_lease(task, now, lease_id)
    attempts = task.attempts if started else max(task.attempts - 1, 0)
    return changed(task, status="pending", execute_at=now, attempts=attempts,
                   lease_id=None, lease_expires_at=None, updated_at=now,
                   version=task.version + 1)


def replay(task: Task, now: float) -> Task:
    """A dead-lettered task is sent back to the queue with its retries reset."""
    if task.status != "failed":
        raise TaskConflict(f"task {task.id} is {task.status}, not in the dead letter")
    return changed(task, status="pending", retries=0, execute_at=now, finished_at=None,
                   updated_at=now, version=task.version + 1)
