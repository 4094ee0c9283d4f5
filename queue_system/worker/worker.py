"""The worker: claim a task, run its handler, report, and again.

Each of the worker's threads (``concurrency``) loops on: claim tasks, run
each one's handler, and claim again, with the outcomes of the tasks just
run in the same request (the server records them, commits, then claims):
one request per round. How many tasks a claim asks for is the prefetch
(``prefetch.py``): by default it adapts, so that short tasks stream and
the lesson's 1-3 s tasks are taken one at a time. A claim that carries no
outcome is a long poll: an idle worker is woken within milliseconds when
a task arrives. While it holds tasks, a heartbeat thread extends
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
from typing import AbstractSet, Dict, Iterable, List, Optional, Set, Union

from ..client import ApiError, QueueClient, ServerUnreachable
from ..lifecycle import heartbeat_every
from ..task import Task
from .handlers import Handler
from .prefetch import Prefetch

log = logging.getLogger("queue_system.worker")

RETRY_FIRST, RETRY_MAX = 0.1, 5.0  # seconds between attempts to reach the server
STOP_GRACE = 0.25  # seconds a stopping worker waits for claims already answered
# A report refused for what it carries (a result too deep: 400; a body too large: 413)
# may pass in smaller pieces. Any other refusal (a wrong token...) would be refused again.
REFUSED_FOR_ITS_BODY = (400, 413)
PASSING_REFUSALS = (408, 429)  # a 4xx that may pass if asked again later


class Worker:
    """Runs handlers for tasks claimed from the queue server at ``client.url``."""

    def __init__(self, client: QueueClient, worker_id: str, handlers: Dict[Optional[str], Handler],
                 *, concurrency: int = 1, types: Optional[Iterable[str]] = None,
                 lease_seconds: Optional[float] = None,
                 prefetch: Union[int, str, Prefetch] = "auto", poll_wait: float = 2.0):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not isinstance(prefetch, Prefetch):
            prefetch = Prefetch(None if prefetch == "auto" else prefetch)
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
        self._busy = [False] * concurrency  # per slot: holds tasks or unreported outcomes
        self._pending: Dict[str, dict] = {}  # finished tasks' outcomes, not yet reported
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
        log.info("[Worker %s] Started (%d thread%s, prefetch %r, server %s)", self.id,
                 self.concurrency, "s" if self.concurrency > 1 else "", self.prefetch,
                 self.client.url)
        slots = [threading.Thread(target=self._slot, args=(n,), name=f"{self.id}-{n}",
                                  daemon=True) for n in range(self.concurrency)]
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
            if self.stopping.is_set() and not any(self._busy):
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
                pending = list(self._pending.values())
                held = [task for task in self._held.values() if task.id not in self._pending]
                self._held = {}
                started = set(self._started)
            log.info("[Worker %s] stopping now: reporting %d finished task(s), giving back "
                     "%d", self.id, len(pending), len(held))
            # Quickly: a server that does not answer within a second will see the
            # leases expire instead. Finished work is reported, not run again; a task
            # whose handler began keeps its attempt.
            with QueueClient(self.client.url, timeout=1.0,
                             token=getattr(self.client, "token", None)) as quick:
                if pending:
                    try:
                        quick.ack(pending)
                    except (ApiError, ServerUnreachable) as exc:
                        log.warning("[Worker %s] could not report: %s", self.id, exc)
                self._release(held, quick, started)
            os._exit(128 + signum)

    def _slot(self, slot: int) -> None:
        outcomes: List[dict] = []  # finished, not yet reported: they ride on the next claim
        while not self.stopping.is_set():
            try:
                outcomes = self._round(slot, outcomes)
            except Exception:  # a bug must not silently stop this thread for good
                log.exception("[Worker %s] unexpected error; going on", self.id)
                outcomes = []
                self._busy[slot] = False
                self.stopping.wait(RETRY_MAX)
        if outcomes:  # stopping: the last outcomes go alone
            try:
                self._report(outcomes)
            finally:
                self._busy[slot] = False

    def _round(self, slot: int, outcomes: List[dict]) -> List[dict]:
        """Report ``outcomes`` and claim (one request), run what came; the new outcomes."""
        tasks = self._exchange(slot, outcomes)
        new: List[dict] = []
        try:
            for task in tasks:
                if self.stopping.is_set():  # shutting down: the rest go back unstarted
                    break
                new.append(self._execute(task))
        except BaseException:
            if new:  # a bug between tasks: what ran is reported
                self._report(new)
            raise
        finally:
            if len(new) < len(tasks):  # what did not run goes back
                self._release(tasks[len(new):])
        self._busy[slot] = bool(new)
        return new

    def _exchange(self, slot: int, outcomes: List[dict]) -> List[Task]:
        """The round's one request. With outcomes to report it does not wait for work:
        the reports must not sit in a long poll. Without, it is a long poll."""
        with self._lock:
            self._claiming += 1
        tasks: List[Task] = []
        try:
            if outcomes:
                try:
                    answer = self._patiently(lambda: self.client.report_and_claim(
                        self.id, outcomes, self.types, wait=0,
                        lease_seconds=self.lease_seconds, max_tasks=self.prefetch.size()),
                        give_up=True, raise_refusal=True)
                except ApiError as exc:
                    # Refused whole, so nothing of it was recorded: a result too large or
                    # too deep, a prefetch beyond the server's --max-claim... The outcomes
                    # go alone (each refused one alone), and the next round claims.
                    self._fit_prefetch(exc)
                    self._report(outcomes)
                    answer = None
                if answer is not None:
                    tasks, results = answer
                    self._log_outcomes(outcomes, results)
            else:
                tasks = self._patiently(lambda: self.client.claim(
                    self.id, self.types, wait=self.poll_wait, lease_seconds=self.lease_seconds,
                    max_tasks=self.prefetch.size())) or []
            with self._lock:  # busy before no longer claiming: run() sees no gap
                self._held.update((task.id, task) for task in tasks)
                self._busy[slot] = bool(tasks) or self._busy[slot]
        finally:
            with self._lock:
                self._claiming -= 1
                for outcome in outcomes:
                    self._done_with(outcome["id"])
        return tasks

    def _done_with(self, task_id: str) -> None:
        """Forget a task whose outcome was reported (or will never be). Lock held."""
        self._held.pop(task_id, None)
        self._started.discard(task_id)
        self._pending.pop(task_id, None)

    def _fit_prefetch(self, refusal: ApiError) -> bool:
        """After a claim refused for its ``max_tasks``: ask the server its --max-claim (in
        ``/health``) and claim no more. True if the prefetch changed, so a retry may pass."""
        if refusal.status != 400 or "max_tasks" not in refusal.message \
                or not self.prefetch.adaptive or self.prefetch.cap == 1:
            return False
        try:
            cap = int(self.client.health()["max_claim"])
        except Exception:  # an older server, or none: halve and try again
            cap = self.prefetch.cap // 2
        self.prefetch.cap = max(1, min(cap, self.prefetch.cap - 1))
        log.info("[Worker %s] the server takes at most %d tasks a claim: prefetch capped",
                 self.id, self.prefetch.cap)
        return True

    def _execute(self, task: Task) -> dict:
        handler = self.handlers.get(task.type, self.handlers.get(None))
        with self._lock:
            self._started.add(task.id)
        log.info("[Worker %s] Processing task %s (%s)", self.id, task.id, task.type)
        began = time.perf_counter()
        try:
            if handler is None:
                raise LookupError(f"this worker has no handler for type {task.type!r}")
            try:
                result = handler(task)
            finally:
                self.prefetch.observe(time.perf_counter() - began)
            # A result that is not strict JSON (NaN, a lone surrogate, an object)
            # is a failure, reported now, rather than a report the server refuses.
            json.dumps(result, allow_nan=False, ensure_ascii=False).encode()
            outcome = {"id": task.id, "lease_id": task.lease_id, "ok": True, "result": result}
        except BaseException as exc:  # even sys.exit() in a handler fails the task, not the slot
            error = f"{type(exc).__name__}: {exc}"
            outcome = {"id": task.id, "lease_id": task.lease_id, "ok": False,
                       "error": error.encode("utf-8", "replace").decode()}
        with self._lock:
            self._pending[task.id] = outcome
        return outcome

    def _report(self, outcomes: List[dict]) -> None:
        """Report outcomes alone (``POST /tasks/ack``): the last ones when stopping, or those
        a claim could not carry. A refused batch is split until each outcome goes alone; a
        result the server refuses (too large, too deep) fails its attempt, saying why."""
        try:
            answers = self._patiently(lambda: self.client.ack(outcomes), give_up=True,
                                      raise_refusal=True) or []
        except ApiError as exc:
            if len(outcomes) > 1:
                half = len(outcomes) // 2
                self._report(outcomes[:half])
                self._report(outcomes[half:])
            elif outcomes[0]["ok"]:
                outcome = outcomes[0]
                self._report([{"id": outcome["id"], "lease_id": outcome["lease_id"], "ok": False,
                               "error": f"the server refused the result: {exc.message}"}])
            else:
                log.error("[Worker %s] task %s: outcome refused: %s", self.id,
                          outcomes[0]["id"], exc.message)
            return
        self._log_outcomes(outcomes, answers)
        with self._lock:
            for outcome in outcomes:
                self._done_with(outcome["id"])

    def _log_outcomes(self, outcomes: List[dict], answers: List[dict]) -> None:
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
            # The lifecycle's rule, which the simulated worker follows too: renew each lease
            # every third of it (the shortest held sets the pace).
            period = min([heartbeat_every(t.lease_expires_at - t.claimed_at) for t in held]
                         or [0.2])
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

    def _patiently(self, call, give_up: bool = False, raise_refusal: bool = False):
        """Call the server until it answers; wait longer after each failure.

        With ``give_up`` (reports), stop trying once the worker is told to
        stop and the server stays away, or after the server refused the
        report with a 5xx (or 408, 429) for about ``RETRY_MAX`` seconds: the
        leases will expire and the queue will hand those tasks out again
        (delivery is at least once).
        With ``raise_refusal``, a refusal of the request's body (400, 413) is
        raised for the caller, which may send it in pieces. Any other 4xx but
        408 and 429 stops the worker: asking again would be refused again."""
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
                if raise_refusal and exc.status in REFUSED_FOR_ITS_BODY:
                    raise
                if self._fit_prefetch(exc):
                    continue  # claim again, within the server's --max-claim
                log.error("[Worker %s] server refused: %s", self.id, exc)
                if 400 <= exc.status < 500 and exc.status not in PASSING_REFUSALS:
                    # The request itself is refused (a bad worker id, a wrong token):
                    # stop, and let run()'s caller say why. Unreported tasks' leases run out.
                    self.refused = exc
                    self.stop()
                    return None
                if give_up and delay >= RETRY_MAX:
                    # A report refused again and again (a 500 that stays): give it up
                    # rather than hold its tasks, whose leases then run out, for good.
                    log.error("[Worker %s] giving up reporting", self.id)
                    return None
                if self.stopping.is_set() and not give_up:
                    return None
            self.stopping.wait(delay) if not give_up else time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
