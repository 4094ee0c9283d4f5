"""The simulation's store: the memory store, for one thread, forgetting completed tasks.

The simulation drives the real ``TaskQueue`` over ``MemoryStore`` hundreds
of thousands of times a run, so this is where its speed tricks live, and
only here. They change what the store costs, never what it answers:

* **One thread, no lock.** SimPy runs the whole model in one thread. The
  operations every task goes through are the store's lock-free bodies
  (``MemoryStore._insert``...): taking even an uncontended lock costs about
  as much as a heap push. The rarer ones keep the lock, and ``transaction()``
  still hands it out (entering a C lock costs less than a ``nullcontext``).
* **Completed tasks forgotten**, as queues that drop finished jobs do (RQ's
  ``result_ttl=0``). A completed task is still counted, but ``get`` and
  ``list`` no longer find it (reporting on it again is a 404, not a 409),
  and its id and idempotency key are free again. The model keeps its own
  records, so a long run holds only the tasks still in play. With
  ``forget_completed=False`` it keeps them, as the store contract's tests do.
"""

from __future__ import annotations

from queue_system.stores.memory import MemoryStore
from queue_system.task import Task


class SimulationStore(MemoryStore):
    """``MemoryStore`` for one thread; completed tasks are forgotten (see the module)."""

    threadsafe = False  # the contract's tests skip their threads for it

    insert = MemoryStore._insert
    next_pending = MemoryStore._next_pending
    due = MemoryStore._due
    due_scheduled = MemoryStore._due_scheduled
    expired_leases = MemoryStore._expired_leases
    next_wakeup = MemoryStore._next_wakeup

    def __init__(self, forget_completed: bool = True):
        super().__init__()
        self.forget_completed = forget_completed

    def update(self, task: Task) -> None:
        if task.status != "completed" or not self.forget_completed:
            return self._update(task)
        self._forget(self._counted(task))  # still counted, no longer kept
