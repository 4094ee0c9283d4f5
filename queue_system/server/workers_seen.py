"""The workers the server has heard from: who is there, for the dashboard and the metrics.

Workers do not register: a worker is whoever claims. The server notes when
each worker id last asked for work or renewed a lease, and which are
waiting in a long poll right now. A worker counts as present while it
waits, or for one lease after it was last heard from (the lease it asked
for, else the server's): a worker that stopped holding a task disappears
when that task's lease runs out (and the task is pending again), as the
lesson's lease promises. A worker killed while it waited for work is
listed until its wait ends (``--poll-wait``, 2 s by default), then for
one lease more.

Worker ids come from the network, so the table is bounded: ids not heard
from within a lease are forgotten, and beyond ``MAX_WORKERS`` the longest
silent is dropped.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Dict, Optional

MAX_WORKERS = 10_000


class WorkersSeen:
    """When each worker was last heard from, and which are waiting for work now."""

    def __init__(self, forget_after: float, clock: Callable[[], float] = time.time):
        self.forget_after, self.clock = forget_after, clock  # the server's lease
        # worker id -> (last heard, the lease it asked for), in order of hearing
        self._last: Dict[str, tuple] = {}
        self._waiting: Dict[str, int] = {}  # worker id -> its long polls now

    def heard(self, worker_id: Optional[str], lease: Optional[float] = None) -> None:
        """``worker_id`` asked for work or reported; ``lease``: the lease it asked for
        (None: as before, or the server's)."""
        if not worker_id:
            return
        before = self._last.pop(worker_id, None)  # to the end: kept in order of hearing
        if lease is None:
            lease = before[1] if before is not None else self.forget_after
        self._last[worker_id] = (self.clock(), lease)
        if len(self._last) > MAX_WORKERS:
            del self._last[next(iter(self._last))]

    @contextmanager
    def waiting(self, worker_id: str):
        """``worker_id`` is in a long poll for the duration of the block."""
        self._waiting[worker_id] = self._waiting.get(worker_id, 0) + 1
        try:
            yield
        finally:
            left = self._waiting.pop(worker_id) - 1
            if left:
                self._waiting[worker_id] = left
            self.heard(worker_id)

    def present(self) -> Dict[str, Dict[str, object]]:
        """Each present worker: when it was last heard from, and whether it waits now."""
        now = self.clock()
        for worker_id in [w for w, (at, lease) in self._last.items()
                          if now - at >= lease and w not in self._waiting]:
            del self._last[worker_id]  # silent for a lease: forgotten
        workers = {worker_id: {"last_heard": now if worker_id in self._waiting else at,
                               "waiting": worker_id in self._waiting}
                   for worker_id, (at, _) in self._last.items()}
        for worker_id in self._waiting:
            workers.setdefault(worker_id, {"last_heard": now, "waiting": True})
        return workers

    def count(self) -> int:
        return len(self.present())
