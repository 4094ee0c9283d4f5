"""The store contract: what every store (memory, SQLite, Redis) must do, whatever its engine.

A store keeps tasks and answers two kinds of question, nothing more:
*find candidates* (the next pending tasks in serving order, scheduled tasks
that are due, leases that have expired) and *apply a transition atomically*
(write the new version of a task only if nobody wrote it since we read it).
The rules that decide which transition to apply live in ``lifecycle`` and
``queue``, once, for every store. What any store promises:

* **Atomic and serialised.** Everything inside the outermost
  ``transaction()`` happens at once or not at all, and transactions take
  turns against every other writer, in this process or another, on this
  server or another sharing the engine. So a read inside a transaction
  stays true until it ends, and two claimers racing for one task never both
  hold a valid lease. ``update`` also checks the version it replaces
  (``ConcurrentUpdate`` otherwise), a second lock behind the first.
* **Undo is a capability, stated.** A nested block that raises is undone on
  its own only where ``undoes_nested_blocks`` is True (SQLite's savepoints).
  Elsewhere the queue's own rule keeps a task whole: a refused step raises
  before it writes anything. The server's group commit asks before it relies on it.
* **The order is the task's.** Pending tasks are served by
  ``task.serving_order``: priority rank, then ``execute_at`` (when the task
  became ready), then ``seq``, its place in line, which ``insert`` stamps.
* **Reads change nothing.** ``get``, ``list`` and the counts only read.
  Scheduled tasks fall due and leases expire when the queue sweeps: before
  a claim, and on the server's own timer.
* **Costs do not grow with the tasks stored.** The store keeps its counts
  per status as tasks change, and ``list`` pages by a cursor (``after``).
* **One error for a failed engine.** A store raises ``StoreUnavailable``
  for its engine's own failures (a locked file, a lost connection), and
  nothing of that operation is kept; the API answers it with a 503. A
  full disk may be reported as ``StoreFull`` (507) instead: SQLite's store
  does.

``tests/test_store_contract.py`` runs the same tests against every store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ..task import WAITING, Task


class Store(ABC):
    """Abstract task store. Methods run inside ``transaction()`` when they must be atomic.

    Any method may raise ``StoreUnavailable`` (or ``StoreFull``, a full disk) when the
    engine fails, as the module's contract says; each method's ``Raises`` lists the
    other errors only.
    """

    #: The URL that names this store (``open_store`` opens it again), shown by ``/health``.
    url = ""
    #: The folder of the store's files on this machine, whose free disk the server watches;
    #: None for a store with no files here (memory, a Redis server).
    folder: Optional[str] = None

    #: Whether a nested ``transaction()`` block that raises is undone alone, writes
    #: included (SQLite's savepoints). A store without it (the memory store) can only
    #: rely on the queue's rule that a refused transition raises before it writes.
    undoes_nested_blocks = False

    @abstractmethod
    def transaction(self) -> AbstractContextManager:
        """Everything inside happens at once or not at all; nesting is allowed.

        Use it as ``with store.transaction():``. Transactions take turns with every
        other writer, so what is read inside stays true until the outermost block
        ends. An exception inside a nested block undoes that block only, if the store
        ``undoes_nested_blocks``; otherwise what the block wrote before it raised stays.

        Returns:
            A context manager; the outermost block commits when it ends without an
            exception.
        """

    @abstractmethod
    def insert(self, task: Task) -> Task:
        """Add a new task and return it as stored.

        Args:
            task: The task; its id, and its idempotency key if any, unused so far.

        Returns:
            The task stamped with its place in line, ``seq``, above every ``seq`` given
            before.

        Raises:
            ConcurrentUpdate: The id, or the idempotency key, is taken.
        """

    @abstractmethod
    def update(self, task: Task) -> None:
        """Replace the stored task by ``task`` if the stored one is version ``task.version - 1``.

        The stored ``seq`` is kept, whatever ``task.seq`` says: the place in line is the
        store's to give.

        Args:
            task: The new version of a stored task, its ``version`` one higher.

        Raises:
            ConcurrentUpdate: No task has this id, or the stored one is not version
                ``task.version - 1``: somebody else wrote it first.
        """

    @abstractmethod
    def get(self, task_id: str) -> Optional[Task]:
        """Read one task.

        Args:
            task_id: The task's id.

        Returns:
            The task with this id, or None if there is none.
        """

    @abstractmethod
    def get_by_idempotency_key(self, key: str) -> Optional[Task]:
        """Find a task by the idempotency key it was submitted with.

        Args:
            key: The idempotency key.

        Returns:
            The task submitted with this key, or None if there is none.
        """

    @abstractmethod
    def next_pending(self, types: Optional[Iterable[str]] = None, limit: int = 1) -> List[Task]:
        """Find the next tasks to serve, without changing them.

        Args:
            types: Only tasks of these types; None for any type (an empty list: none).
            limit: The most tasks to return.

        Returns:
            Up to ``limit`` pending tasks in serving order (``task.serving_order``),
            whatever their ``execute_at``: the queue checks they are ready by its clock.
        """

    @abstractmethod
    def due_scheduled(self, now: float, limit: int = 1000) -> List[Task]:
        """Find the scheduled tasks that fell due, without changing them.

        Args:
            now: The time, in seconds.
            limit: The most tasks to return.

        Returns:
            Up to ``limit`` scheduled tasks whose ``execute_at`` is at or before ``now``.
        """

    @abstractmethod
    def expired_leases(self, now: float, limit: int = 1000) -> List[Task]:
        """Find the tasks whose lease ran out, without changing them.

        Args:
            now: The time, in seconds.
            limit: The most tasks to return.

        Returns:
            Up to ``limit`` processing tasks whose lease ended before ``now`` (a lease
            ending exactly at ``now`` still holds).
        """

    def due(self, now: float, limit: int = 1000) -> Tuple[Sequence[Task], Sequence[Task]]:
        """What a sweep at ``now`` acts on: ``(due_scheduled(now), expired_leases(now))``.

        The queue sweeps before every claim, and asks this one question rather than
        the two: a store may answer the usual "nothing" faster than both apart.

        Args:
            now: The time, in seconds.
            limit: The most tasks of each kind to return.

        Returns:
            ``(scheduled tasks due, tasks whose lease ran out)``, each as the method of
            that name returns them.
        """
        return self.due_scheduled(now, limit), self.expired_leases(now, limit)

    @abstractmethod
    def next_wakeup(self) -> Optional[float]:
        """When a scheduled task next falls due or a lease next ends.

        Returns:
            The earliest ``execute_at`` of a scheduled task or ``lease_expires_at`` of a
            processing task, in seconds, or None if there is neither.
        """

    @abstractmethod
    def list(self, status: Optional[str] = None, type: Optional[str] = None,
             limit: int = 100, offset: int = 0, after: Optional[int] = None,
             newest_first: bool = False) -> List[Task]:
        """Read a page of tasks, filtered by status and type.

        Args:
            status: Only tasks in this status; None for any.
            type: Only tasks of this type; None for any.
            limit: The most tasks to return.
            offset: Skip this many matching tasks first.
            after: Only tasks whose ``seq`` is above this, in either order; None for all.
            newest_first: The highest ``seq`` first, instead of the lowest.

        Returns:
            Up to ``limit`` tasks, in ``seq`` order (or its reverse).
        """

    @abstractmethod
    def count_by_status(self) -> Dict[str, int]:
        """How many tasks are in each status.

        The store keeps these counts as tasks change, so asking costs the same
        however many tasks it holds.

        Returns:
            A dict from each status to its count, every status present, zero included.
        """

    def count_waiting(self) -> int:
        """How many tasks wait to run (pending or scheduled): what a queue's capacity bounds.

        Returns:
            The number of pending and scheduled tasks.
        """
        counts = self.count_by_status()
        return sum(counts[status] for status in WAITING)

    def reusable_bytes(self) -> int:
        """How much room purged tasks freed, which the store fills before it grows again.

        Returns:
            A number of bytes; 0 for a store that keeps no such room (the default).
        """
        return 0

    @abstractmethod
    def delete_finished(self, before: float, limit: int = 1000) -> int:
        """Delete finished tasks: completed or dead-lettered, never waiting or running ones.

        Their ids and idempotency keys are free again.

        Args:
            before: Delete the tasks whose ``finished_at`` is at or before this time.
            limit: The most tasks to delete.

        Returns:
            How many tasks were deleted.
        """

    def prefetch(self, task_ids: Sequence[str]) -> None:
        """A hint, inside a transaction: these tasks are about to be read.

        Each report of a batch, each new id of a batch of submits: a store whose every
        read is a round trip to a server reads them at once; the others ignore it.

        Args:
            task_ids: The ids of the tasks about to be read.
        """

    def transaction_alive(self) -> bool:
        """Inside ``transaction()``: False once the store has abandoned it.

        SQLite rolls a whole transaction back by itself on some errors (a
        full disk); whoever batches work in one transaction must then stop.

        Returns:
            True while the transaction can still commit what is done inside it.
        """
        return True

    def close(self) -> None:
        """Release the store's files and connections; the store is not used after."""
