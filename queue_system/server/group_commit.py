"""Group commit: one thread owns the store and commits requests in batches.

Picture a ferry: passengers (requests) queue on the quay; the ferry (the
store thread) leaves with everyone waiting, and a crossing (one durable
commit, one fsync) costs the same for one passenger or two hundred. Under
load, many requests share a commit, so the server's throughput is not
capped by the disk's fsync rate, and a request is only answered once its
commit is on disk: a 202 still means "stored".

Each request runs in its own savepoint, so one refused request (a stale
lease, an invalid task) is undone alone while the others in the batch are
committed.

Effects outside the store (a line in the dead-letter log) wait in the
``Outbox`` until the commit that made them true is on disk: a request that
is undone, or a batch whose commit fails, leaves no trace there either.

A request that may make work (a submit) is run with ``makes_work``: after
its batch, still inside the same transaction, ``on_work(handed)`` runs (the
server hands the new tasks to workers waiting for some, see ``long_poll``),
and each ``(future, value)`` it adds to ``handed`` is answered with the
batch, after the same commit, or told of its failure.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from concurrent.futures import Future
from typing import Any, Callable, List, Optional, Tuple

from ..stores.base import Store

log = logging.getLogger("queue_system.server")

_STOP = object()


class Outbox:
    """Effects that wait for the commit, as in the transactional outbox pattern, but held
    in memory: a crash between the commit and the effect loses the effect (a line of the
    dead-letter log; the task itself is safe in the store).

    Only the store thread adds to it, from inside the requests it runs."""

    def __init__(self):
        self._effects: List[Callable[[], Any]] = []

    def add(self, effect: Callable[[], Any]) -> None:
        self._effects.append(effect)

    def _mark(self) -> int:
        return len(self._effects)

    def _undo(self, mark: int) -> None:
        del self._effects[mark:]

    def _release(self) -> None:
        effects, self._effects = self._effects, []
        for effect in effects:
            try:
                effect()
            except Exception:  # the commit stands: an effect that fails is logged, not raised
                log.exception("an effect after the commit failed")


class GroupCommitter:
    """Runs callables against a store in one thread, many per transaction."""

    def __init__(self, store: Store, max_batch: int = 256, outbox: Optional[Outbox] = None,
                 on_work: Optional[Callable[[List[Tuple[Future, Any]]], None]] = None):
        self.store = store
        self.max_batch = max_batch
        self.outbox = outbox or Outbox()
        self.on_work = on_work
        self._requests: "queue.SimpleQueue" = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="group-commit", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable, *args: Any, makes_work: bool = False) -> Future:
        """Queue ``fn(*args)``; the future resolves once its transaction is committed.
        With ``makes_work``, ``on_work`` runs after its batch, in the same transaction."""
        future: Future = Future()
        self._requests.put((future, fn, args, makes_work))
        return future

    async def run(self, fn: Callable, *args: Any, makes_work: bool = False) -> Any:
        """Await ``fn(*args)`` from the event loop."""
        return await asyncio.wrap_future(self.submit(fn, *args, makes_work=makes_work))

    async def run_each(self, fn: Callable, items: List[Any], makes_work: bool = False,
                       first: Optional[Callable[[], Any]] = None) -> List[tuple]:
        """Await ``fn(item)`` for each item, each undone alone if it fails as if it were a
        request of its own, but sent to the store thread as one: ``(True, result)`` or
        ``(False, exception)`` per item. A worker's 100 reports cost one trip, not 100.
        ``first()`` runs before them, in the same transaction (a store's prefetch)."""
        return await self.run(self._each, fn, items, first, makes_work=makes_work)

    def _each(self, fn: Callable, items: List[Any],
              first: Optional[Callable[[], Any]] = None) -> List[tuple]:
        if first is not None:
            first()
        # Optimistic: all items in one savepoint, since nearly always none is refused.
        # If one is, that savepoint is undone and each item runs again in its own, so
        # the others are still recorded. (A savepoint per item from the start costs a
        # seventh more store time per report, measured on 20,000 completions.) Only a
        # store that undoes a nested block can run an item twice this way.
        outbox = self.outbox
        if self.store.undoes_nested_blocks and len(items) > 1:
            mark = outbox._mark()
            try:
                with self.store.transaction():
                    return [(True, fn(item)) for item in items]
            except Exception:
                outbox._undo(mark)
                if not self.store.transaction_alive():
                    raise  # the store gave the whole transaction up
        results = []
        for item in items:
            mark = outbox._mark()
            try:
                with self.store.transaction():
                    results.append((True, fn(item)))
            except Exception as exc:
                outbox._undo(mark)
                if not self.store.transaction_alive():
                    raise
                results.append((False, exc))
        return results

    def close(self) -> None:
        """Finish what is queued, then stop the thread."""
        self._requests.put(_STOP)
        self._thread.join()

    def _serve(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._requests.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._requests.get_nowait())
                except queue.Empty:
                    break
            if _STOP in batch:
                stopping = True
                batch = [item for item in batch if item is not _STOP]
            if batch:
                self._commit(batch)

    def _commit(self, batch: list) -> None:
        outcomes = []
        handed: List[Tuple[Future, Any]] = []  # what on_work answers after the commit
        outbox = self.outbox
        made_work = False
        try:
            with self.store.transaction():
                for future, fn, args, makes_work in batch:
                    # A request whose client went away before its turn is not run.
                    if not future.set_running_or_notify_cancel():
                        continue
                    mark = outbox._mark()
                    try:
                        with self.store.transaction():  # a savepoint: undone alone on error
                            outcomes.append((future, True, fn(*args)))
                        made_work = made_work or makes_work
                    except Exception as exc:  # the caller gets it, the batch goes on
                        outbox._undo(mark)
                        if not self.store.transaction_alive():
                            raise  # the store gave the whole transaction up: so do we
                        outcomes.append((future, False, exc))
                if made_work and self.on_work is not None:
                    self.on_work(handed)
        except Exception as exc:
            # The commit itself failed (disk full...): nothing of this batch is stored.
            outbox._undo(0)
            log.exception("commit of %d requests failed", len(batch))
            for future, _, _, _ in batch:
                if future.running() or (not future.done() and future.set_running_or_notify_cancel()):
                    future.set_exception(exc)
            for future, _ in handed:  # what on_work handed out is undone too
                if future.set_running_or_notify_cancel():
                    future.set_exception(exc)
            return
        outbox._release()
        for future, ok, value in outcomes:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        for future, value in handed:
            if future.set_running_or_notify_cancel():  # now it cannot be cancelled
                future.set_result(value)
