"""The task: one unit of work, as an immutable record.

A task is what a producer hands to the queue and a worker takes from it:
a ``type`` that says which handler runs it, a ``payload`` (any JSON value),
and the bookkeeping the queue keeps about it (status, retries, lease, the
time of each transition). A task never changes in place: each step of its
life (see ``lifecycle``) returns a new record with ``version`` one higher,
which lets a store refuse a write based on a stale read.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, NamedTuple, Optional


class Status(str, Enum):
    """Where a task is in its life (the lesson's state diagram, made exact)."""

    SCHEDULED = "scheduled"    # waiting for its execute_at
    PENDING = "pending"        # ready: the next worker may claim it
    PROCESSING = "processing"  # a worker holds it under a lease
    COMPLETED = "completed"    # done, with a result
    FAILED = "failed"          # the dead letter: retries used up


class Priority(str, Enum):
    """The lesson's exercise 1: high before normal before low."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


# The order in which priorities are served: a lower rank is claimed first.
PRIORITY_RANK = {"high": 0, "normal": 1, "low": 2}
STATUSES = tuple(s.value for s in Status)
PRIORITIES = tuple(p.value for p in Priority)
WAITING = ("scheduled", "pending")
FINISHED = ("completed", "failed")


class Task(NamedTuple):
    """A task as the queue stores it. Times are seconds on the queue's clock.

    ``retries`` counts failed attempts (an expired lease counts as one); a
    task whose ``retries`` reaches ``max_retries`` goes to the dead letter,
    so with the default 3 a task fails at most 3 times. ``attempts`` counts
    the runs: every claim, except one given back before its handler began.

    ``seq`` is the task's place in the line of submissions, given by the store
    when it stores the task (a new task's is 0). Pending tasks are served by
    ``serving_order``: priority first, then the time they became ready, then
    ``seq``, so equal priorities stay first-in first-out on every store.
    """

    id: str
    type: str
    payload: Any
    status: str = "pending"
    priority: str = "normal"
    created_at: float = 0.0
    execute_at: float = 0.0          # not handed out before this time
    retries: int = 0
    max_retries: int = 3
    attempts: int = 0                # runs begun (a claim given back unstarted is not one)
    result: Any = None
    error: Optional[str] = None
    worker_id: Optional[str] = None  # who holds it, or last held it
    lease_id: Optional[str] = None
    lease_expires_at: Optional[float] = None
    claimed_at: Optional[float] = None   # start of the latest attempt
    finished_at: Optional[float] = None  # completed or dead-lettered
    updated_at: float = 0.0              # time of the latest transition
    idempotency_key: Optional[str] = None
    version: int = 0
    seq: int = 0                         # place in line, given by the store

    def to_dict(self) -> dict:
        """The task as JSON-ready data (the HTTP API's representation)."""
        return self._asdict()

    @classmethod
    def from_dict(cls, data: dict) -> "Task":
        """Rebuild a task from ``to_dict`` output; unknown keys are ignored."""
        return cls(**{k: data[k] for k in cls._fields if k in data})


def serving_order(task: Task) -> tuple:
    """The key pending tasks are served by, smallest first: the priority's rank (high
    first), then ``execute_at`` (when the task became ready), then ``seq``. Every store
    orders pending tasks by it, from the task's own fields."""
    return (PRIORITY_RANK[task.priority], task.execute_at, task.seq)
