"""The worker: claim a task, run its handler, report, and again.

Each of the worker's threads (``concurrency``) loops on: claim up to
``prefetch`` tasks (a long poll: an idle worker is woken within
milliseconds when a task arrives), run each one's handler, then report the
outcomes in one request. While it holds tasks, a heartbeat thread extends
their leases, so a long task is not taken away; if the worker dies, the
heartbeats stop and the queue gives the task to another worker once the
lease expires.

Stopping is polite (the RQ way): the first SIGTERM or SIGINT lets the
running tasks finish, gives back the ones not started, and claims nothing
more; a second signal gives every lease back at once and exits. If the
server is unreachable, the worker waits and tries again, with a growing
delay, instead of dying; if it refuses the claim itself (a 4xx: a bad
worker id, say), asking again cannot help, and the worker stops.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from typing import AbstractSet, Dict, Iterable, List, Optional, Set

from ..client import ApiError, QueueClient, ServerUnreachable
from ..task import Task
from .handlers import Handler

log = logging.getLogger("queue_system.worker")

RETRY_FIRST, RETRY_MAX = 0.1, 5.0  # seconds between attempts to reach the server
STOP_GRACE = 0.25  # seconds a stopping worker waits for claims already answered


class Worker:
    """Runs handlers for tasks claimed from the queue server at ``client.url``."""

    def __init__(self, client: QueueClient, worker_id: str, handlers: Dict[Optional[str], Handler],
                 *, concurrency: int = 1, types: Optional[Iterable[str]] = None,
                 lease_seconds: Optional[float] = None, prefetch: int = 1, poll_wait: float = 2.0):
        if concurrency < 1 or prefetch < 1:
            raise ValueError("concurrency and prefetch must be at least 1")
        self.client = client
        self.id = worker_id
        self.handlers = handlers
        self.concurrency = concurrency
        self.types = list(types) if types else None
        self.lease_seconds = lease_seconds
        self.prefetch = prefetch
        self.poll_wait = poll_wait
        self.stopping = threading.Event()
        self.done = {"completed": 0, "failed": 0}
        self._held: Dict[str, Task] = {}  # task id -> task with its lease
        self._started: Set[str] = set()  # held tasks whose handler has begun
        self._busy = 0  # slots holding tasks
        self._claiming = 0  # slots waiting for the answer to a claim
        self._lock = threading.Lock()
        self._signals = 0
        # Set when the server refuses a claim outright (a 4xx): the worker stops.
        self.refused: Optional[ApiError] = None

    # -- running ----------------------------------------------------------------------

    def run(self) -> None:
        """Work until stopped (``stop()``, a signal, or a claim the server refuses, kept in
        ``refused``); returns after a warm shutdown."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        log.info("[Worker %s] Started (%d thread%s, server %s)", self.id, self.concurrency,
                 "s" if self.concurrency > 1 else "", self.client.url)
        slots = [threading.Thread(target=self._slot, name=f"{self.id}-{n}", daemon=True)
                 for n in range(self.concurrency)]
        beat = threading.Thread(target=self._heartbeats, name=f"{self.id}-heartbeat", daemon=True)
        for thread in slots + [beat]:
            thread.start()
        # Wait for the slots; once stopping, only for those holding tasks: an
        # idle slot in a long poll is abandoned (the server gives back whatever
        # it claims for a client that went away). But a claim the server has
        # just answered may still be on its way to us: after the stop, slots in
        # a claim get a short grace, so such tasks are given back, not left
        # under a lease nobody renews.
        grace_ends = None
        while any(thread.is_alive() for thread in slots):
            if self.stopping.is_set() and not self._busy:
                if grace_ends is None:
                    grace_ends = time.monotonic() + STOP_GRACE
                if not self._claiming or time.monotonic() >= grace_ends:
                    break
            time.sleep(0.05 if grace_ends is None else 0.01)
        log.info("[Worker %s] Stopped: %d completed, %d failed", self.id,
                 self.done["completed"], self.done["failed"])

    def stop(self) -> None:
        """Warm shutdown: finish running tasks, claim no more."""
        self.stopping.set()

    def _on_signal(self, signum, frame) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("[Worker %s] %s: finishing current tasks, then stopping "
                     "(again to stop now)", self.id, signal.Signals(signum).name)
            self.stop()
        else:
            with self._lock:
                held, self._held = list(self._held.values()), {}
                started = set(self._started)
            log.info("[Worker %s] stopping now: giving back %d task(s)", self.id, len(held))
            # Quickly: a server that does not answer within a second will see the
            # leases expire instead. A task whose handler began keeps its attempt.
            with QueueClient(self.client.url, timeout=1.0, token=getattr(self.client, "token", None)) as quick:
                self._release(held, quick, started)
            os._exit(128 + signum)

    def _slot(self) -> None:
        while not self.stopping.is_set():
            try:
                self._claim_and_run()
            except Exception:  # a bug must not silently stop this thread for good
                log.exception("[Worker %s] unexpected error; going on", self.id)
                self.stopping.wait(RETRY_MAX)

    def _claim_and_run(self) -> None:
        """One round: claim (a long poll), run what came, report."""
        with self._lock:
            self._claiming += 1
        try:
            tasks = self._patiently(lambda: self.client.claim(
                self.id, self.types, wait=self.poll_wait, lease_seconds=self.lease_seconds,
                max_tasks=self.prefetch))
            with self._lock:  # busy before no longer claiming: run() sees no gap
                if tasks:
                    self._busy += 1
                    self._held.update((task.id, task) for task in tasks)
        finally:
            with self._lock:
                self._claiming -= 1
        if not tasks:
            return
        try:
            outcomes = []
            for n, task in enumerate(tasks):
                if self.stopping.is_set():  # shutting down: the rest go back unstarted
                    self._release(tasks[n:])
                    break
                outcomes.append(self._execute(task))
            if outcomes:
                self._report(outcomes)
        finally:
            with self._lock:
                self._busy -= 1

    def _execute(self, task: Task) -> dict:
        handler = self.handlers.get(task.type, self.handlers.get(None))
        with self._lock:
            self._started.add(task.id)
        log.info("[Worker %s] Processing task %s (%s)", self.id, task.id, task.type)
        try:
            if handler is None:
                raise LookupError(f"this worker has no handler for type {task.type!r}")
            result = handler(task)
            # A result that is not strict JSON (NaN, a lone surrogate, an object)
            # is a failure, reported now, rather than a report the server refuses.
            json.dumps(result, allow_nan=False, ensure_ascii=False).encode()
            return {"id": task.id, "lease_id": task.lease_id, "ok": True, "result": result}
        except BaseException as exc:  # even sys.exit() in a handler fails the task, not the slot
            error = f"{type(exc).__name__}: {exc}"
            return {"id": task.id, "lease_id": task.lease_id, "ok": False,
                    "error": error.encode("utf-8", "replace").decode()}

    def _report(self, outcomes: List[dict]) -> None:
        answers = self._patiently(lambda: self.client.ack(outcomes), give_up=True) or []
        for outcome, answer in zip(outcomes, answers):
            if "error" in answer:
                log.warning("[Worker %s] task %s: outcome refused: %s", self.id, outcome["id"],
                            answer["error"])
            elif outcome["ok"]:
                self.done["completed"] += 1
                log.info("[Worker %s] Completed task %s", self.id, outcome["id"])
            else:
                self.done["failed"] += 1
                log.info("[Worker %s] Task %s failed (%s), now %s", self.id, outcome["id"],
                         outcome["error"], answer["status"])
        with self._lock:
            for outcome in outcomes:
                self._held.pop(outcome["id"], None)
                self._started.discard(outcome["id"])

    def _release(self, tasks: List[Task], client: Optional[QueueClient] = None,
                 started: AbstractSet[str] = frozenset()) -> None:
        for task in tasks:
            try:
                (client or self.client).release(task.id, task.lease_id,
                                                started=task.id in started)
            except (ApiError, ServerUnreachable) as exc:
                log.warning("[Worker %s] could not give back task %s: %s", self.id, task.id, exc)
            with self._lock:
                self._held.pop(task.id, None)

    def _heartbeats(self) -> None:
        while True:
            with self._lock:
                held = list(self._held.values())
            period = min([(t.lease_expires_at - t.claimed_at) / 3 for t in held] or [0.2])
            time.sleep(max(period, 0.05))
            for task in held:
                if task.id not in self._held:
                    continue
                try:
                    self.client.heartbeat(task.id, task.lease_id, self.lease_seconds)
                except ApiError as exc:  # the lease is lost: its outcome will be refused
                    log.warning("[Worker %s] heartbeat for %s refused: %s", self.id, task.id,
                                exc.message)
                except ServerUnreachable:
                    pass  # the report will retry; the lease may run out meanwhile

    def _patiently(self, call, give_up: bool = False):
        """Call the server until it answers; wait longer after each failure.

        With ``give_up`` (reports), stop trying once the worker is told to
        stop and the server stays away: the leases will expire and the
        queue will hand those tasks out again (delivery is at least once)."""
        delay = RETRY_FIRST
        while True:
            try:
                return call()
            except ServerUnreachable as exc:
                if give_up and self.stopping.is_set() and delay >= RETRY_MAX:
                    log.warning("[Worker %s] giving up reporting: %s", self.id, exc)
                    return None
                if not give_up and self.stopping.is_set():
                    return None
                log.warning("[Worker %s] server unreachable, retrying in %.1fs", self.id, delay)
            except ApiError as exc:
                log.error("[Worker %s] server refused: %s", self.id, exc)
                if give_up:
                    return None
                if 400 <= exc.status < 500 and exc.status not in (408, 429):
                    # The request itself is refused (a bad worker id, say): asking again
                    # would be refused again. Stop, and let run()'s caller say why.
                    self.refused = exc
                    self.stop()
                    return None
                if self.stopping.is_set():
                    return None
            self.stopping.wait(delay) if not give_up else time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
