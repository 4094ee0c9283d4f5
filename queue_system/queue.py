"""The queue: the lifecycle's rules applied to a store, on a clock.

``TaskQueue`` is what the HTTP server, the simulation and the notebooks
use. Each operation reads the candidates from the store, asks
``lifecycle`` for the next version of each task, and writes it back in one
transaction. Before a worker claims a task, the queue *sweeps*: scheduled
tasks that fell due become pending, and tasks whose lease expired go back
to the queue or to the dead letter. Reading (``get``, ``list``, ``stats``)
changes nothing: between two sweeps a task may still read "scheduled" past
its time, which is why the server also sweeps on a timer. Time comes from
the clock it was given, so a test or the simulation controls it.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import math
import random
import secrets
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from . import lifecycle
from .backoff import Backoff
from .clock import Clock, system_clock
from .errors import ConcurrentUpdate, InvalidTask, QueueFull, TaskNotFound
from .stores.base import Store
from .task import STATUSES, Task

DEFAULT_LEASE_SECONDS = 15.0
MIN_LEASE_SECONDS = 1.0
MAX_LEASE_SECONDS = 24 * 3600.0
MAX_CLAIM_BATCH = 1000


def wall_clock_ids(clock: Clock):
    """Make task ids like the lesson's ``task-1732780000000-9f86d081c2a4e7b3``.

    The time in milliseconds, then 64 random bits: a million tasks made in one
    millisecond collide with a chance of 3 in 100 million (the lesson's 32 bits:
    1 in 8,600 for a thousand). A collision still refuses nothing: the queue then
    draws another id.

    Args:
        clock: Gives the time in seconds; its milliseconds begin each id.

    Returns:
        A function of no arguments that returns a new id at each call.
    """
    def make_id() -> str:
        return f"task-{int(clock() * 1000)}-{secrets.token_hex(8)}"
    return make_id


def sequential_ids(prefix: str = "task-"):
    """Make ids ``task-1``, ``task-2``...: reproducible, for the simulation and tests.

    Args:
        prefix: The text before the number (the simulation's lease ids use ``"lease-"``).

    Returns:
        A function of no arguments that returns the next id at each call, counting from 1
        (each function made here counts on its own).
    """
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter)}"


def random_lease_ids():
    """Make lease ids nobody can guess, so only the holder can act on its task.

    Returns:
        A function of no arguments that returns 16 random hex digits at each call.
    """
    return functools.partial(secrets.token_hex, 8)


class TaskQueue:
    """Priority, retries with backoff, the dead letter, scheduling and leases.

    Besides the errors each method lists, any method that reaches the store may raise
    the store's own: ``StoreUnavailable`` when its engine fails (a locked file, a lost
    connection), or ``StoreFull`` when SQLite finds its disk full.

    Args:
        store: Where the tasks are kept (``MemoryStore``, ``SQLiteStore``, ``RedisStore``).
        clock: Gives the time in seconds: ``time.time`` by default; a test's
            ``ManualClock`` or the simulation's clock otherwise.
        backoff: How long a failed task waits before its retry (see ``fail``).
        lease_seconds: How long a claim or a heartbeat holds a task when the call does
            not say, from 1 to 86400 seconds (a day).
        rng: Draws the backoff's random jitter; a seeded ``random.Random`` repeats a run.
        make_id: A function of no arguments that gives each new task its id;
            ``wall_clock_ids(clock)`` by default.
        make_lease_id: A function of no arguments that gives each claim its lease id;
            ``random_lease_ids()`` by default.
        on_dead_letter: Called with each task as it enters the dead letter.
        on_lease_expired: Called with each task whose lease ran out, as a sweep finds it.
        capacity: The most tasks that may wait (pending or scheduled); None for no limit.

    Raises:
        InvalidTask: ``lease_seconds`` is not a number from 1 to 86400.
        ValueError: ``capacity`` is not a whole number, zero or more.
    """

    def __init__(self, store: Store, clock: Clock = system_clock, *,
                 backoff: Backoff = Backoff(), lease_seconds: float = DEFAULT_LEASE_SECONDS,
                 rng: Optional[random.Random] = None, make_id=None, make_lease_id=None,
                 on_dead_letter: Optional[Callable[[Task], None]] = None,
                 on_lease_expired: Optional[Callable[[Task], None]] = None,
                 capacity: Optional[int] = None):
        self.store = store
        self.clock = clock
        self.backoff = backoff
        self.lease_seconds = check_lease_seconds(lease_seconds)
        self.rng = rng or random.Random()
        self.make_id = make_id or wall_clock_ids(clock)
        # A new lease id for every claim. Random by default; the simulation, where nobody
        # forges a lease, passes ``sequential_ids("lease-")``, which is cheaper to make.
        self.make_lease_id = make_lease_id or random_lease_ids()
        # Called with each task as it enters the dead letter, by a failure or an expired
        # lease (the server's --dead-letter-log). It runs inside the operation: a caller
        # that commits later (the server's group commit) must hold the effect until then.
        self.on_dead_letter = on_dead_letter
        # Called likewise with each task whose lease ran out, as the sweep finds it (the
        # server's metrics): its worker stopped, or took longer than its lease.
        self.on_lease_expired = on_lease_expired
        # The most tasks that may wait (pending or scheduled); a submit beyond is refused
        # with QueueFull (HTTP 503). None: no limit.
        if capacity is not None and not (lifecycle.is_whole_number(capacity) and capacity >= 0):
            raise ValueError(f"capacity must be a whole number, zero or more, not {capacity!r}")
        self.capacity = capacity

    # -- producers --------------------------------------------------------------

    def submit(self, type: str, payload: Any = None, *, priority: str = "normal",
               max_retries: int = 3, execute_at: Optional[float] = None,
               delay: Optional[float] = None,
               idempotency_key: Optional[str] = None) -> Tuple[Task, bool]:
        """Add one task.

        With an idempotency key already used, nothing is added and the first
        task is returned with ``created=False``: a producer may safely resend,
        even to a full queue.

        Args:
            type: Which handler runs it, such as ``"email"``: a string of 1 to 200
                characters, not only spaces.
            payload: The handler's input: any value the store can keep (JSON for SQLite
                and Redis).
            priority: ``"high"``, ``"normal"`` or ``"low"``.
            max_retries: A task whose failures reach this number goes to the dead letter:
                a whole number from 1 to 1000 (3: at most three attempts).
            execute_at: Not handed out before this time, in seconds on the queue's clock
                (since the epoch by default); a time already past means now. None: now.
            delay: Another way to give ``execute_at``: seconds from now, zero or more.
                Give one of the two, not both.
            idempotency_key: A string of 1 to 200 characters that names this task, so
                that a resend is recognised; None for none.

        Returns:
            ``(task, created)``: the new task as stored (``pending``, or ``scheduled``
            when its time is ahead) and True; or, for a key used before, the first task
            and False.

        Raises:
            InvalidTask: An argument is invalid; the message says which.
            QueueFull: ``capacity`` tasks already wait (not raised for a resend).
            ConcurrentUpdate: ``make_id`` gave three ids in a row that were taken, or the
                store found the idempotency key taken as it inserted the task.
        """
        task = self._new_task(type, payload, priority, max_retries, execute_at, delay,
                              idempotency_key)
        if idempotency_key is None and self.capacity is None:
            # One insert is atomic by itself: no transaction around it, which
            # spares the store a BEGIN and a COMMIT on the busiest path.
            return self._store_new(task), True
        with self.store.transaction():  # look up the key, count, and insert, at once
            return self._insert(task)

    def submit_many(self, specs: Sequence[dict]) -> List[Tuple[Task, bool]]:
        """Add several tasks: all of them, or none.

        Every task is checked before the first is stored, so one bad task
        refuses the whole batch on any store. A key used before, or repeated
        in the batch, stores one task, as ``submit`` does.

        Args:
            specs: One dict per task, of ``submit``'s arguments by name: ``"type"``, and
                if wanted ``"payload"``, ``"priority"``, ``"max_retries"``,
                ``"execute_at"``, ``"delay"``, ``"idempotency_key"``.

        Returns:
            One ``(task, created)`` pair per spec, in the order given, as ``submit``
            returns them.

        Raises:
            InvalidTask: A spec is invalid; nothing is stored.
            QueueFull: The new tasks do not all fit under ``capacity``; nothing is stored.
            ConcurrentUpdate: As for ``submit``.
        """
        tasks = []
        for spec in specs:
            spec = dict(spec)
            unknown = sorted(set(spec) - SPEC_KEYS, key=str)
            if unknown:
                raise InvalidTask(f"unknown task field {unknown[0]!r}; a task has "
                                  f"{', '.join(sorted(SPEC_KEYS))}")
            tasks.append(self._new_task(spec.pop("type", None), spec.pop("payload", None), **spec))
        store = self.store
        with store.transaction():
            store.prefetch([task.id for task in tasks])  # each insert checks its id is free
            if self.capacity is None:
                return [self._insert(task) for task in tasks]
            # Resends (an idempotency key already used) take no room, and a new key
            # repeated in the batch makes one task: count what will be stored.
            known = [None if task.idempotency_key is None
                     else store.get_by_idempotency_key(task.idempotency_key) for task in tasks]
            new_keys = {task.idempotency_key for task, found in zip(tasks, known)
                        if found is None and task.idempotency_key is not None}
            keyless = sum(task.idempotency_key is None for task in tasks)
            self._check_room(keyless + len(new_keys))
            return [(found, False) if found is not None else self._insert(task, counted=True)
                    for task, found in zip(tasks, known)]

    def _new_task(self, type, payload, priority="normal", max_retries=3, execute_at=None,
                  delay=None, idempotency_key=None) -> Task:
        now = self.clock()
        if delay is not None:
            if execute_at is not None:
                raise InvalidTask("give 'execute_at' or 'delay', not both")
            if isinstance(delay, bool) or not isinstance(delay, (int, float)) \
                    or not math.isfinite(delay) or delay < 0:
                raise InvalidTask("'delay' must be a number of seconds, zero or more")
            execute_at = now + delay
        if idempotency_key is not None and not (isinstance(idempotency_key, str)
                                                and 0 < len(idempotency_key) <= 200):
            raise InvalidTask("'idempotency_key' must be a string of 1 to 200 characters")
        return lifecycle.new_task(self.make_id(), type, payload, now, priority, max_retries,
                                  execute_at, idempotency_key)

    def _insert(self, task: Task, counted: bool = False) -> Tuple[Task, bool]:
        if task.idempotency_key is not None:
            existing = self.store.get_by_idempotency_key(task.idempotency_key)
            if existing is not None:
                return existing, False  # a resend is answered even when the queue is full
        if self.capacity is not None and not counted:
            self._check_room(1)
        return self._store_new(task), True

    def _store_new(self, task: Task) -> Task:
        """Insert ``task``; should its id be taken already, under another id."""
        for _ in range(3):
            try:
                return self.store.insert(task)
            except ConcurrentUpdate:
                if self.store.get(task.id) is None:
                    raise  # not the id: the idempotency key was taken meanwhile
                task = task._replace(id=self.make_id())
        raise ConcurrentUpdate(f"no free task id after 3 tries, the last {task.id!r}: "
                               "does the queue's make_id repeat itself?")

    def _check_room(self, count: int) -> None:
        """The capacity rule: refuse ``count`` new tasks that would not fit."""
        capacity = self.capacity
        waiting = self.store.count_waiting()
        if waiting + count > capacity:
            raise QueueFull(f"the queue is full: {'more than ' if waiting > capacity else ''}"
                            f"{min(waiting, capacity)} tasks wait and its capacity is {capacity}"
                            + (f", so {count} more do not fit" if count > 1 else "")
                            + "; try again later")

    # -- workers --------------------------------------------------------------------

    def claim(self, worker_id: str, types: Optional[Iterable[str]] = None,
              lease_seconds: Optional[float] = None, limit: int = 1) -> List[Task]:
        """Hand up to ``limit`` ready tasks to ``worker_id``, each under its own lease.

        The queue sweeps first (see ``sweep``), so a scheduled task that fell due, or
        a task whose lease ran out, may be handed out at once. Tasks come in serving
        order: priority, then the time they became ready, then submission order.

        Args:
            worker_id: Who takes them: a non-empty string, recorded on each task.
            types: Only tasks of these types: a list of names (a single string would be
                read as its letters). None for any type; an empty list matches none.
            lease_seconds: How long the worker holds each task unless it sends a
                heartbeat, from 1 to 86400 seconds; None for the queue's ``lease_seconds``.
            limit: The most tasks to take: a whole number from 1 to 1000.

        Returns:
            The tasks taken, now ``processing``, each with a new ``lease_id`` and
            ``lease_expires_at`` and one more ``attempts``; an empty list if none is ready.

        Raises:
            InvalidTask: ``worker_id``, ``types`` (a string, not a list), ``lease_seconds``
                or ``limit`` is invalid (for ``limit`` the message says ``'max_tasks'``,
                the HTTP API's name).
        """
        if not isinstance(worker_id, str) or not worker_id:
            raise InvalidTask("'worker_id' must be a non-empty string")
        lease = self.lease_seconds if lease_seconds is None else check_lease_seconds(lease_seconds)
        # A limit of exactly the int 1 (the default, and nearly every call) is valid as it
        # is; anything else is checked. The class is tested first: True == 1 in Python,
        # and comparing some objects with 1 would raise instead of being refused.
        if limit.__class__ is not int or limit != 1:
            check_claim_limit(limit)
        if isinstance(types, str):  # list("email") would be five one-letter types
            raise InvalidTask("'types' must be a list of task types, such as [\"email\"]")
        if types is not None:
            types = list(types)
        store = self.store
        with store.transaction():
            now = self.clock()
            # The sweep first, so that what fell due may be claimed. It almost always finds
            # nothing, and then costs one question to the store, not a call more.
            promoted, expired = store.due(now)
            if promoted or expired:
                self._sweep(now, promoted, expired)
            claimed = []
            for task in self._ready(types, limit, now):
                task = lifecycle.claim(task, now, worker_id, self.make_lease_id(), lease)
                store.update(task)
                claimed.append(task)
        return claimed

    def _ready(self, types, limit: int, now: float) -> List[Task]:
        """The next ``limit`` pending tasks that are ready by this queue's clock.

        On one clock every pending task is. A store shared by servers whose clocks differ
        a little may hold a task made by one a moment ahead of ours: it waits for ours
        (never before its execute_at), and the tasks after it are served meanwhile."""
        ask = limit
        while True:
            found = self.store.next_pending(types, ask)
            ready = [task for task in found if task.execute_at <= now]
            if len(ready) >= limit or len(found) < ask:
                return ready[:limit]
            ask += len(found) - len(ready)

    def heartbeat(self, task_id: str, lease_id: Optional[str],
                  lease_seconds: Optional[float] = None) -> Task:
        """Extend the lease of a task the caller holds.

        Args:
            task_id: The task's id.
            lease_id: The lease its claim gave; None acts on the current lease, whoever
                holds it (as the lesson's routes do).
            lease_seconds: The lease now ends this many seconds from now, from 1 to 86400;
                None for the queue's ``lease_seconds``.

        Returns:
            The task with its new ``lease_expires_at``.

        Raises:
            InvalidTask: ``lease_seconds`` is not a number from 1 to 86400.
            TaskNotFound: No task has this id.
            TaskConflict: The task is not ``processing``, ``lease_id`` is not its current
                lease (stale), or the lease has expired, even before a sweep noticed.
        """
        lease = self.lease_seconds if lease_seconds is None else check_lease_seconds(lease_seconds)
        with self.store.transaction():
            task = lifecycle.heartbeat(self.get(task_id), self.clock(), lease_id, lease)
            self.store.update(task)
        return task

    def complete(self, task_id: str, lease_id: Optional[str], result: Any = None) -> Task:
        """Record success: the task is ``completed`` with its result.

        Args:
            task_id: The task's id.
            lease_id: The lease its claim gave; None acts on the current lease, whoever
                holds it (the lesson's route).
            result: What the handler returned, kept on the task.

        Returns:
            The task, ``completed``, with its ``result`` and ``finished_at``.

        Raises:
            TaskNotFound: No task has this id.
            TaskConflict: The task is not ``processing``, ``lease_id`` is not its current
                lease (stale), or the lease has expired, even before a sweep noticed.
        """
        with self.store.transaction():
            task = lifecycle.complete(self.get(task_id), self.clock(), lease_id, result)
            self.store.update(task)
        return task

    def fail(self, task_id: str, lease_id: Optional[str], error: Optional[str] = None) -> Task:
        """Record a failed attempt: retried after the backoff, or dead-lettered.

        The failure counts in ``retries``. When ``retries`` reaches ``max_retries`` the
        task goes to the dead letter (status ``failed``) and ``on_dead_letter`` is
        called with it; otherwise a worker may claim it again after the backoff's delay.

        Args:
            task_id: The task's id.
            lease_id: The lease its claim gave; None acts on the current lease, whoever
                holds it (the lesson's route).
            error: What went wrong, kept on the task.

        Returns:
            The task: ``scheduled`` until its retry (``pending`` if the delay is zero),
            or ``failed``.

        Raises:
            TaskNotFound: No task has this id.
            TaskConflict: The task is not ``processing``, ``lease_id`` is not its current
                lease (stale), or the lease has expired, even before a sweep noticed.
        """
        with self.store.transaction():
            task = lifecycle.fail(self.get(task_id), self.clock(), lease_id, error, self.backoff,
                                  self.rng)
            self.store.update(task)
        if task.status == "failed" and self.on_dead_letter is not None:
            self.on_dead_letter(task)
        return task

    def release(self, task_id: str, lease_id: Optional[str], started: bool = False) -> Task:
        """Give a held task back unfinished, without counting a failure.

        The task is ``pending`` again at once (a worker shutting down, a claim whose
        client went away). A task given back unstarted was not attempted, so its claim
        no longer counts in ``attempts``; one whose handler had begun keeps the attempt.

        Args:
            task_id: The task's id.
            lease_id: The lease its claim gave; None acts on the current lease.
            started: Whether the task's handler had begun.

        Returns:
            The task, ``pending`` and ready now, with no lease.

        Raises:
            TaskNotFound: No task has this id.
            TaskConflict: The task is not ``processing``, ``lease_id`` is not its current
                lease (stale), or the lease has expired, even before a sweep noticed.
        """
        with self.store.transaction():
            task = lifecycle.release(self.get(task_id), self.clock(), lease_id, started)
            self.store.update(task)
        return task

    def prefetch(self, task_ids: Sequence[str]) -> None:
        """Say that the next steps act on these tasks (a worker's batch of reports).

        Call it inside a store transaction: a store whose every read is a round trip
        to a server (Redis) may then read them all at once (``Store.prefetch``); the
        others ignore it.

        Args:
            task_ids: The ids of the tasks about to be read.
        """
        self.store.prefetch(task_ids)

    # -- time passing -------------------------------------------------------------------

    def sweep(self) -> Dict[str, int]:
        """Promote due scheduled tasks and expire stale leases.

        A ``scheduled`` task whose ``execute_at`` has come becomes ``pending``. A
        ``processing`` task whose lease ended counts a failure: it is ``pending`` again
        at once, with no backoff, or dead-lettered if its failures reach
        ``max_retries``. ``on_lease_expired`` is called with it, and ``on_dead_letter``
        too if it was dead-lettered.
        One sweep handles at most 1000 tasks of each kind.

        Returns:
            ``{"promoted": ..., "expired": ...}``: how many tasks of each kind.
        """
        with self.store.transaction():
            now = self.clock()
            promoted, expired = self.store.due(now)
            self._sweep(now, promoted, expired)
        return {"promoted": len(promoted), "expired": len(expired)}

    def _sweep(self, now: float, promoted: Sequence[Task], expired: Sequence[Task]) -> None:
        """Promote the scheduled tasks and expire the leases ``store.due(now)`` found due."""
        store = self.store
        for task in promoted:
            store.update(lifecycle.promote(task, now))
        for task in expired:
            task = lifecycle.expire(task, now, self.rng)
            store.update(task)
            if self.on_lease_expired is not None:
                self.on_lease_expired(task)
            if task.status == "failed" and self.on_dead_letter is not None:
                self.on_dead_letter(task)  # its last attempt's worker died

    def next_wakeup(self) -> Optional[float]:
        """When the queue will next change by itself (a task falls due, a lease ends).

        Returns:
            The earliest ``execute_at`` of a scheduled task or ``lease_expires_at`` of a
            processing task, in seconds on the queue's clock (a lease that ends then still
            holds at that instant), or None if no task waits for a time.
        """
        return self.store.next_wakeup()

    def purge(self, older_than: float, limit: int = 1000) -> int:
        """Delete old completed and dead-lettered tasks; waiting and running work is kept.

        Their ids and idempotency keys are free again: a resend with a purged key makes
        a new task.

        Args:
            older_than: Delete the tasks that finished at least this many seconds ago:
                a finite number, zero or more.
            limit: The most tasks to delete in this call.

        Returns:
            How many tasks were deleted.

        Raises:
            InvalidTask: ``older_than`` is not a finite number, zero or more.
        """
        if isinstance(older_than, bool) or not isinstance(older_than, (int, float)) \
                or not math.isfinite(older_than) or older_than < 0:
            raise InvalidTask("'older_than' must be a number of seconds, zero or more")
        with self.store.transaction():
            return self.store.delete_finished(self.clock() - older_than, limit)

    # -- the dead letter ---------------------------------------------------------------------

    def dead_letter(self, limit: int = 100, offset: int = 0, after: Optional[int] = None,
                    newest_first: bool = False) -> List[Task]:
        """Tasks in the dead letter: those whose failures reached ``max_retries``.

        Args:
            limit: The most tasks to return.
            offset: Skip this many first.
            after: Only tasks whose ``seq`` is above this (see ``list``).
            newest_first: The latest submitted first, instead of submission order.
                ``after`` still keeps the tasks above it, so it pages oldest first only.

        Returns:
            Up to ``limit`` ``failed`` tasks, in ``seq`` order, or its reverse.
        """
        return self.store.list(status="failed", limit=limit, offset=offset, after=after,
                               newest_first=newest_first)

    def replay(self, task_id: str) -> Task:
        """Send a dead-lettered task back to the queue with its retries reset.

        The task is ``pending`` and ready now, with ``retries`` 0; its ``attempts`` and
        last ``error`` are kept. It waits again, so a full queue refuses it.

        Args:
            task_id: The task's id.

        Returns:
            The task, ``pending``.

        Raises:
            TaskNotFound: No task has this id.
            TaskConflict: The task is not in the dead letter (its status is not ``failed``).
            QueueFull: ``capacity`` tasks already wait.
        """
        with self.store.transaction():
            task = self.get(task_id)
            if task.status == "failed" and self.capacity is not None:
                self._check_room(1)  # it will wait again: it needs room
            task = lifecycle.replay(task, self.clock())
            self.store.update(task)
        return task

    # -- looking ----------------------------------------------------------------------------

    def get(self, task_id: str) -> Task:
        """The task with this id, as stored.

        Reading changes nothing: until the next sweep, a task may still read
        ``scheduled`` past its time, or ``processing`` past the end of its lease.

        Args:
            task_id: The task's id.

        Returns:
            The task.

        Raises:
            TaskNotFound: No task has this id.
        """
        task = self.store.get(task_id)
        if task is None:
            raise TaskNotFound(f"no task with id {task_id!r}")
        return task

    def list(self, status: Optional[str] = None, type: Optional[str] = None,
             limit: int = 100, offset: int = 0, after: Optional[int] = None) -> List[Task]:
        """Up to ``limit`` tasks in submission order, filtered by status and type.

        Page with ``after``, the ``seq`` of the last task of the page before: a page
        then costs its own length however deep it is (with a ``status``; a ``type``
        alone is found among the tasks after the cursor, so a rare type costs more).
        ``offset`` (skip that many) is kept for the lesson's simple paging, and costs
        the tasks it skips.

        Args:
            status: Only tasks in this status (``scheduled``, ``pending``, ``processing``,
                ``completed``, ``failed``); None for any.
            type: Only tasks of this type; None for any.
            limit: The most tasks to return.
            offset: Skip this many matching tasks first.
            after: Only tasks whose ``seq`` is above this.

        Returns:
            The tasks, in ``seq`` order.

        Raises:
            InvalidTask: ``status`` is not one of the statuses.
        """
        if status is not None and status not in STATUSES:
            raise InvalidTask(f"'status' must be one of {', '.join(STATUSES)}, not {status!r}")
        return self.store.list(status=status, type=type, limit=limit, offset=offset, after=after)

    def stats(self) -> Dict[str, int]:
        """How many tasks are in each status, as the lesson's ``/stats``, plus totals.

        The store keeps the counts, so this costs the same however many tasks are stored.

        Returns:
            A dict with a count for each status (``scheduled``, ``pending``,
            ``processing``, ``completed``, ``failed``), ``dead_letter`` (the same as
            ``failed``) and ``total``.
        """
        counts = self.store.count_by_status()
        counts["dead_letter"] = counts["failed"]
        counts["total"] = sum(counts[s] for s in STATUSES)
        return counts


# What a task given to ``submit_many`` may say: the arguments of ``_new_task``, which
# takes each one (``submit``'s, by the same names).
SPEC_KEYS = frozenset(inspect.signature(TaskQueue._new_task).parameters) - {"self"}


def check_claim_limit(value) -> None:
    """Check how many tasks one claim asks for.

    Args:
        value: The number of tasks.

    Raises:
        InvalidTask: ``value`` is not an int (a bool is refused) from 1 to
            ``MAX_CLAIM_BATCH`` (1000); the message names it ``'max_tasks'``.
    """
    if not lifecycle.is_whole_number(value) or not 1 <= value <= MAX_CLAIM_BATCH:
        raise InvalidTask(f"'max_tasks' must be a whole number from 1 to {MAX_CLAIM_BATCH}")


def check_lease_seconds(value) -> float:
    """Check the length of a lease.

    Args:
        value: Seconds, an int or a float (a bool is refused).

    Returns:
        ``value`` as a float.

    Raises:
        InvalidTask: ``value`` is not a number from ``MIN_LEASE_SECONDS`` (1) to
            ``MAX_LEASE_SECONDS`` (86400, a day).
    """
    # A lease shorter than a second would expire before any real worker could
    # report, and burn the task's retries: refuse it instead.
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not MIN_LEASE_SECONDS <= value <= MAX_LEASE_SECONDS:
        raise InvalidTask(f"a lease must last from {MIN_LEASE_SECONDS:g} to "
                          f"{MAX_LEASE_SECONDS:.0f} seconds")
    return float(value)


__all__ = ["TaskQueue", "DEFAULT_LEASE_SECONDS", "wall_clock_ids", "sequential_ids",
           "random_lease_ids", "ConcurrentUpdate"]
