"""Long polls: a worker that asks for work when there is none waits at the server.

A waiting worker learns of new work in one of two ways:

* **The hand-off.** It is parked in ``WaitingClaims``, where the store
  thread sees it. When a batch of requests has made work (a submit, a task
  given back), the store thread claims that work for the parked workers in
  the batch's own transaction: the task is stored and handed out by one
  commit, and the worker's answer leaves with the producer's 202. Without
  it, the worker would be woken after that commit to ask in the next one,
  a second commit (a second fsync) between a submit and its start.
* **The signal.** Whatever may have made work also sets ``WorkSignal``,
  which wakes every waiting worker to look again: the hand-off cannot see
  work that appeared between a worker's last look and its parking, nor a
  scheduled task falling due (each worker also wakes when the next one is
  due).

The first parked is the first served, and a claim the store thread makes
for a worker is the queue's ordinary ``claim``: same order, same lease.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..queue import TaskQueue
from .group_commit import Outbox

log = logging.getLogger("queue_system.server")

WAITING, SERVING, DONE = "waiting", "serving", "done"


class WorkSignal:
    """Wakes long-polling claims when work may have appeared."""

    def __init__(self):
        self._event = asyncio.Event()

    def current(self) -> asyncio.Event:
        return self._event

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()


class Waiter:
    """One parked claim; ``future`` gets the tasks handed to it (perhaps none)."""

    __slots__ = ("worker_id", "types", "lease_seconds", "limit", "future", "state", "leaving")

    def __init__(self, worker_id: str, types, lease_seconds, limit: int):
        self.worker_id, self.types = worker_id, types
        self.lease_seconds, self.limit = lease_seconds, limit
        self.future: Future = Future()
        self.state, self.leaving = WAITING, False


class WaitingClaims:
    """The parked claims, in arrival order, shared by the event loop and the store thread.

    A waiter is ``waiting`` (the store thread may serve it, or its worker may
    leave), ``serving`` (the store thread is claiming for it) or ``done``.
    The lock only guards those changes of state, never a claim: the event
    loop is not held up while the store works. A waiter that leaves while it
    is being served is answered all the same, with what its claim found."""

    def __init__(self, queue: TaskQueue, outbox: Optional[Outbox] = None):
        self.queue = queue
        self.outbox = outbox or Outbox()  # the committer's: a claim's sweep may dead-letter
        self._lock = threading.Lock()
        self._waiters: Dict[Waiter, None] = {}  # a dict keeps arrival order

    def park(self, worker_id: str, types, lease_seconds, limit: int) -> Waiter:
        waiter = Waiter(worker_id, types, lease_seconds, limit)
        with self._lock:
            self._waiters[waiter] = None
        return waiter

    def leave(self, waiter: Waiter) -> bool:
        """Unpark ``waiter``: True if nothing was handed to it, else its future says what."""
        with self._lock:
            if waiter.state is WAITING:
                del self._waiters[waiter]
                waiter.state = DONE
                return True
            waiter.leaving = True  # being served: its future will say, tasks or none
            return False

    def serve(self, answers: List[Tuple[Future, Any]]) -> None:
        """In the store thread, inside the batch's transaction: claim for each parked
        worker, in order, and add ``(future, tasks)`` to ``answers``, which the committer
        answers once the commit is done (or tells of its failure)."""
        with self._lock:
            if not self._waiters:
                return
            waiters = list(self._waiters)
        found_none = set()  # the types (None: any) whose claim came back empty
        for waiter in waiters:
            types = None if waiter.types is None else tuple(waiter.types)
            if None in found_none:
                break  # nothing of any type is ready
            if types in found_none:
                continue
            with self._lock:
                if waiter.state is not WAITING:
                    continue  # its worker left meanwhile
                waiter.state = SERVING
            tasks = None
            try:
                tasks = self._claim(waiter)
            finally:  # even if the store gave up: the waiter is answered or waits on
                with self._lock:
                    if tasks or waiter.leaving or tasks is None:
                        del self._waiters[waiter]
                        waiter.state = DONE
                        answers.append((waiter.future, tasks or []))
                    else:
                        waiter.state = WAITING
            if tasks == []:  # (None: the claim failed, which proves nothing)
                found_none.add(types)

    def _claim(self, waiter: Waiter) -> Optional[list]:
        """The tasks claimed for ``waiter``; None if its claim failed (logged)."""
        store, outbox = self.queue.store, self.outbox
        mark = outbox._mark()
        try:
            with store.transaction():  # a savepoint: a refused claim is undone alone
                return self.queue.claim(waiter.worker_id, waiter.types, waiter.lease_seconds,
                                        waiter.limit)
        except Exception:
            outbox._undo(mark)
            if not store.transaction_alive():
                raise  # the whole batch is lost: the committer tells every answer so
            log.exception("claiming for waiting worker %s failed", waiter.worker_id)
            return None


async def wait_for_work(waiting: WaitingClaims, waiter: Waiter, signal: asyncio.Event,
                        timeout: float, give_back: Callable[[list], Any]) -> Optional[list]:
    """Wait, parked, until tasks are handed to ``waiter``, ``signal`` is set or
    ``timeout`` passes. The tasks handed to it, or None: look again, or give up.

    If the wait is cancelled (the server stopping) after tasks were claimed for
    it, they are given back with ``give_back``: no task stays held by no one."""
    handed = asyncio.wrap_future(waiter.future)  # only answered, never cancelled
    woken = asyncio.ensure_future(signal.wait())
    try:
        await asyncio.wait((handed, woken), timeout=timeout,
                           return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        if not waiting.leave(waiter):
            _give_back_when_answered(waiter, give_back)
        raise
    finally:
        woken.cancel()
    if waiting.leave(waiter):
        return None
    try:
        return await handed  # served, or being served: its answer is on the way
    except asyncio.CancelledError:
        _give_back_when_answered(waiter, give_back)
        raise
    except Exception:  # the commit failed: nothing was handed out
        return None


def _give_back_when_answered(waiter: Waiter, give_back: Callable[[list], Any]) -> None:
    """Whoever waited is gone: what the store thread hands to it goes back."""
    def answered(future: Future) -> None:
        if future.exception() is None and future.result():
            give_back(future.result())
    waiter.future.add_done_callback(answered)
