"""The in-memory store: a dict of tasks and three heaps that index it.

Like a ticket dispenser at a counter: each pending task gets a ticket,
its ``serving_order`` ``(priority rank, execute_at, seq)``, on a heap per task type,
so the smallest ticket, the next task to serve, is always on top and equal
priorities stay first-in first-out. Scheduled tasks wait on a heap ordered
by ``execute_at``, leases on a heap ordered by expiry.

Heaps are cleaned lazily: an entry holds the very task record it was made
for, and an entry whose task has moved on since (a newer record, or none)
is dropped when it reaches the top. Nothing survives the process: this
store is for the notebooks, the tests and the simulation (whose own variant,
``sim.store.SimulationStore``, runs in one thread and forgets completed
tasks). Operations are serialised by a lock, so threads may share it; a
transaction cannot be rolled back, which is safe because the queue checks
every rule before it writes.
"""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict
from heapq import heappop, heappush
from typing import Dict, Iterable, List, Optional

from ..errors import ConcurrentUpdate
from ..task import FINISHED, PRIORITY_RANK, STATUSES, WAITING, Task, changed
from .base import Store

NOTHING_DUE = ((), ())  # what ``due`` answers nearly always, built once


class MemoryStore(Store):
    """Tasks in a dict; heaps of (key..., seq, version, task) entries find candidates fast.

    ``seq``, the task's place in line, is the store's to give: ``insert`` stamps it.

    An entry is current while the task it holds is the very record stored
    (``is``): a record is never reused, so neither a later version nor a new
    task under a forgotten task's id can pass for it. ``seq`` and ``version``
    settle ties before the record itself would be compared.

    A public method that takes the lock runs its body, the method of the same name
    with a leading underscore; those bodies assume the lock is held (or not needed: the
    simulation's store, in one thread, calls them directly).
    """

    url = "memory://"

    def __init__(self):
        self._tasks: Dict[str, Task] = {}
        self._by_key: Dict[str, str] = {}
        # task type -> heap of (rank, execute_at, seq, version, task), made at the type's first push
        self._ready: Dict[str, list] = defaultdict(list)
        self._scheduled: list = []          # heap of (execute_at, seq, version, task)
        self._leases: list = []             # heap of (lease_expires_at, seq, version, task)
        self._counts = dict.fromkeys(STATUSES, 0)
        self._next_seq = itertools.count(1)
        self._lock = threading.RLock()

    def transaction(self):
        return self._lock

    # -- writes ---------------------------------------------------------------

    def insert(self, task: Task) -> Task:
        with self._lock:
            return self._insert(task)

    def _insert(self, task: Task) -> Task:
        task_id, key = task.id, task.idempotency_key
        if task_id in self._tasks:
            raise ConcurrentUpdate(f"task {task_id} already exists")
        if key is not None:
            if key in self._by_key:
                raise ConcurrentUpdate(f"idempotency key {key!r} is taken")
            self._by_key[key] = task_id
        task = changed(task, seq=next(self._next_seq))  # its place in line
        self._tasks[task_id] = task
        self._counts[task.status] += 1
        self._index(task)
        return task

    def update(self, task: Task) -> None:
        with self._lock:
            self._update(task)

    def _update(self, task: Task) -> None:
        task = self._counted(task)
        self._tasks[task.id] = task
        self._index(task)  # (a finished task is on no heap)

    def _counted(self, task: Task) -> Task:
        """Check that ``task`` replaces the version stored, and count its new status;
        returns it as it will be stored."""
        old = self._tasks.get(task.id)
        if old is None or old.version != task.version - 1:
            raise ConcurrentUpdate(f"task {task.id} was changed by someone else")
        if task.seq != old.seq:  # the place in line is the store's to give, as in SQLite
            task = changed(task, seq=old.seq)
        if old.status != task.status:
            counts = self._counts
            counts[old.status] -= 1
            counts[task.status] += 1
        return task

    def _index(self, task: Task) -> None:
        """Push the entry that finds ``task`` on its status's heap."""
        status = task.status
        if status == "pending":
            # serving_order(task), spelled out: this runs for every task
            heappush(self._ready[task.type], (PRIORITY_RANK[task.priority], task.execute_at,
                                              task.seq, task.version, task))
        elif status == "processing":
            heappush(self._leases, (task.lease_expires_at, task.seq, task.version, task))
        elif status == "scheduled":
            heappush(self._scheduled, (task.execute_at, task.seq, task.version, task))

    # -- candidates -------------------------------------------------------------

    def _top(self, heap: list) -> Optional[tuple]:
        """The heap's first entry that is still current, dropping stale ones.

        An entry is stale when its task has a newer record, or none (purged, or forgotten
        by the simulation's store)."""
        tasks = self._tasks
        while heap:
            entry = heap[0]
            task = entry[-1]
            if tasks.get(task.id) is task:
                return entry
            heappop(heap)
        return None

    def next_pending(self, types: Optional[Iterable[str]] = None, limit: int = 1) -> List[Task]:
        with self._lock:
            return self._next_pending(types, limit)

    def _next_pending(self, types: Optional[Iterable[str]] = None, limit: int = 1) -> List[Task]:
        heaps = self._ready.values() if types is None else \
            [self._ready[t] for t in types if t in self._ready]
        if limit == 1:
            # The common case (one worker, one task): the best top is the answer,
            # no need to pop entries and push them back.
            best = None
            for heap in heaps:
                entry = self._top(heap)
                if entry is not None and (best is None or entry < best):
                    best = entry
            return [] if best is None else [best[-1]]
        heaps = list(heaps)
        found, taken = [], []
        while len(found) < limit:
            best_heap, best = None, None
            for heap in heaps:
                entry = self._top(heap)
                if entry is not None and (best is None or entry < best):
                    best_heap, best = heap, entry
            if best is None:
                break
            taken.append((best_heap, heappop(best_heap)))
            found.append(best[-1])
        # Reading must not change the index: put back what we looked at.
        for heap, entry in taken:
            heappush(heap, entry)
        return found

    def _entries_until(self, heap: list, now: float, limit: int, strict: bool) -> List[Task]:
        """Current entries keyed at or before ``now`` (before it, if ``strict``); under the lock."""
        found, taken = [], []
        while len(found) < limit:
            entry = self._top(heap)
            if entry is None or entry[0] > now or (strict and entry[0] == now):
                break
            taken.append(heappop(heap))
            found.append(entry[-1])
        for entry in taken:
            heappush(heap, entry)
        return found

    # The queue asks both questions (in one call, ``due``) before every claim, and the answer
    # is almost always "none": when even the heap's first entry, current or stale, is later
    # than ``now``, every entry is, and there is no need to clean the heap or build anything.

    def due(self, now: float, limit: int = 1000):
        with self._lock:
            return self._due(now, limit)

    def _due(self, now: float, limit: int = 1000):
        scheduled, leases = self._scheduled, self._leases
        if (not scheduled or scheduled[0][0] > now) and (not leases or leases[0][0] >= now):
            return NOTHING_DUE  # the usual answer, without a call or a list
        return self._due_scheduled(now, limit), self._expired_leases(now, limit)

    def due_scheduled(self, now: float, limit: int = 1000) -> List[Task]:
        with self._lock:
            return self._due_scheduled(now, limit)

    def _due_scheduled(self, now: float, limit: int = 1000) -> List[Task]:
        heap = self._scheduled
        if not heap or heap[0][0] > now:
            return []
        return self._entries_until(heap, now, limit, strict=False)

    def expired_leases(self, now: float, limit: int = 1000) -> List[Task]:
        with self._lock:
            return self._expired_leases(now, limit)

    def _expired_leases(self, now: float, limit: int = 1000) -> List[Task]:
        # A lease ending exactly now is still valid (lifecycle.lease_expired).
        heap = self._leases
        if not heap or heap[0][0] >= now:
            return []
        # Past entries are nearly all stale: the lease of a task completed since.
        # Once ``_top`` has dropped them, look further only if a lease truly ran out.
        entry = self._top(heap)
        if entry is None or entry[0] >= now:
            return []
        return self._entries_until(heap, now, limit, strict=True)

    def next_wakeup(self) -> Optional[float]:
        with self._lock:
            return self._next_wakeup()

    def _next_wakeup(self) -> Optional[float]:
        scheduled, lease = self._top(self._scheduled), self._top(self._leases)
        if scheduled is None or lease is None:
            entry = scheduled or lease
            return None if entry is None else entry[0]
        return min(scheduled[0], lease[0])

    # -- reads --------------------------------------------------------------------

    def get(self, task_id: str) -> Optional[Task]:
        return self._tasks.get(task_id)

    def get_by_idempotency_key(self, key: str) -> Optional[Task]:
        task_id = self._by_key.get(key)
        return None if task_id is None else self._tasks.get(task_id)

    def list(self, status=None, type=None, limit=100, offset=0, after=None,
             newest_first=False) -> List[Task]:
        # The dict keeps insertion order, which is seq order. (A cursor still walks the
        # tasks before it here: this store is for the simulation and the labs.)
        with self._lock:
            tasks = self._tasks.values()
            matching = (t for t in (reversed(tasks) if newest_first else tasks)
                        if (status is None or t.status == status)
                        and (type is None or t.type == type)
                        and (after is None or t.seq > after))
            return list(itertools.islice(matching, offset, offset + limit))

    def count_by_status(self) -> Dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def count_waiting(self) -> int:
        counts = self._counts
        return sum(counts[status] for status in WAITING)

    def delete_finished(self, before: float, limit: int = 1000) -> int:
        with self._lock:
            old = list(itertools.islice((task for task in self._tasks.values()
                                         if task.status in FINISHED
                                         and task.finished_at <= before), limit))
            for task in old:  # a finished task is in no heap: nothing else holds it
                self._forget(task)
                self._counts[task.status] -= 1
            return len(old)

    def _forget(self, task: Task) -> None:
        """Drop ``task``: its id and idempotency key are free again. Heap entries that
        still hold it are stale now, and go when they reach the top (see ``_top``)."""
        del self._tasks[task.id]
        if task.idempotency_key is not None:
            del self._by_key[task.idempotency_key]
