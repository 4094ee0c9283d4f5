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
  nothing of that operation is kept; the API answers it with a 503.

``tests/test_store_contract.py`` runs the same tests against every store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ..task import Task


class Store(ABC):
    """Abstract task store. Methods run inside ``transaction()`` when they must be atomic."""

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

        An exception inside a nested block undoes that block only, if the store
        ``undoes_nested_blocks``; otherwise what the block wrote before it raised stays."""

    @abstractmethod
    def insert(self, task: Task) -> Task:
        """Add a new task (its id, and idempotency key if any, are unused) and return it as
        stored: stamped with its place in line, ``seq``, above every ``seq`` given before.

        Raises ``ConcurrentUpdate`` if the id or the idempotency key is taken."""

    @abstractmethod
    def update(self, task: Task) -> None:
        """Replace the stored task by ``task`` if the stored one is version ``task.version - 1``.

        Raises ``ConcurrentUpdate`` otherwise: somebody else wrote it first."""

    @abstractmethod
    def get(self, task_id: str) -> Optional[Task]:
        """The task with this id, or None."""

    @abstractmethod
    def get_by_idempotency_key(self, key: str) -> Optional[Task]:
        """The task submitted with this idempotency key, or None."""

    @abstractmethod
    def next_pending(self, types: Optional[Iterable[str]] = None, limit: int = 1) -> List[Task]:
        """Up to ``limit`` pending tasks in serving order, only of ``types`` if given."""

    @abstractmethod
    def due_scheduled(self, now: float, limit: int = 1000) -> List[Task]:
        """Scheduled tasks whose ``execute_at`` is at or before ``now``."""

    @abstractmethod
    def expired_leases(self, now: float, limit: int = 1000) -> List[Task]:
        """Processing tasks whose lease ended before ``now``."""

    def due(self, now: float, limit: int = 1000) -> Tuple[Sequence[Task], Sequence[Task]]:
        """What a sweep at ``now`` acts on: ``(due_scheduled(now), expired_leases(now))``.

        The queue sweeps before every claim, and asks this one question rather than
        the two: a store may answer the usual "nothing" faster than both apart."""
        return self.due_scheduled(now, limit), self.expired_leases(now, limit)

    @abstractmethod
    def next_wakeup(self) -> Optional[float]:
        """The earliest time a scheduled task falls due or a lease ends, or None."""

    @abstractmethod
    def list(self, status: Optional[str] = None, type: Optional[str] = None,
             limit: int = 100, offset: int = 0, after: Optional[int] = None,
             newest_first: bool = False) -> List[Task]:
        """Up to ``limit`` tasks in ``seq`` order (the highest first if ``newest_first``),
        filtered by status and type, skipping ``offset`` of them; with ``after``, only
        those whose ``seq`` is above it."""

    @abstractmethod
    def count_by_status(self) -> Dict[str, int]:
        """How many tasks are in each status (every status present, zero included).

        The store keeps these counts as tasks change, so asking costs the same
        however many tasks it holds."""

    def count_waiting(self) -> int:
        """Tasks waiting to run (pending or scheduled): what a queue's capacity bounds."""
        counts = self.count_by_status()
        return counts["pending"] + counts["scheduled"]

    def reusable_bytes(self) -> int:
        """Bytes the store has freed (purged tasks) and will fill before it grows again."""
        return 0

    @abstractmethod
    def delete_finished(self, before: float, limit: int = 1000) -> int:
        """Delete up to ``limit`` completed or dead-lettered tasks that finished at or
        before ``before``; returns how many. Their ids and idempotency keys are free again."""

    def prefetch(self, task_ids: Sequence[str]) -> None:
        """A hint, inside a transaction: these tasks are about to be read (each report of a
        batch, each new id of a batch of submits). A store whose every read is a round
        trip to a server reads them at once; the others ignore it."""

    def transaction_alive(self) -> bool:
        """Inside ``transaction()``: False once the store has abandoned it.

        SQLite rolls a whole transaction back by itself on some errors (a
        full disk); whoever batches work in one transaction must then stop."""
        return True

    def close(self) -> None:
        """Release files and connections."""
