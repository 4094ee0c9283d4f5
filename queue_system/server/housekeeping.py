"""What keeps a long-running server within its disk: a guard and a purge.

Nothing a queue stores is ever deleted by its lifecycle: completed tasks
and the dead letter stay, for the lesson to look at. On a server left
running, that is a disk that fills. Two settings bound it:

* ``--retention``: finished tasks (completed or dead-lettered) older than
  this are purged, by the server's own timer (or on demand: ``python -m
  queue_system purge --older-than 7d``). Waiting and running work is
  never purged.
* ``--min-free-disk``: while the store's disk has less free space than
  this, new work is refused with 507 and a ``Retry-After``, before SQLite
  would fail half-way through a write. Work already accepted still runs
  and is still reported. Space comes back with a purge: SQLite keeps the
  pages it freed for its next rows rather than shrinking the file, so the
  guard counts them as free.
"""

from __future__ import annotations

import shutil
import time
from typing import Callable, Optional

from ..errors import StoreFull


class DiskGuard:
    """Refuses new work while the folder's disk has less than ``min_free`` bytes free.

    The free space is looked up at most once per ``every`` seconds: a submit
    must not pay a system call each time."""

    def __init__(self, folder: Optional[str], min_free: int, every: float = 1.0,
                 free_bytes: Callable[[str], int] = lambda folder: shutil.disk_usage(folder).free,
                 reusable_bytes: Callable[[], int] = lambda: 0,
                 clock: Callable[[], float] = time.monotonic):
        self.folder = folder
        self.min_free = min_free
        self.every = every
        self.free_bytes = free_bytes
        self.reusable_bytes = reusable_bytes  # the store's own free pages (after a purge)
        self.clock = clock
        self._checked_at = None
        self._free = None

    def check(self) -> None:
        if not self.folder or not self.min_free:
            return  # a store in memory, or no guard asked for
        now = self.clock()
        if self._checked_at is None or now - self._checked_at >= self.every:
            self._free = self.free_bytes(self.folder) + self.reusable_bytes()
            self._checked_at = now
        if self._free < self.min_free:
            raise StoreFull(f"the store's disk has {self._free // 2**20} MiB free, less than the "
                            f"{self.min_free // 2**20} MiB kept free (--min-free-disk): no new "
                            "task is accepted until finished tasks are purged or space is freed")


def purge_interval(retention: float) -> float:
    """How often the server purges: often enough that nothing stays much past its age."""
    return min(max(retention / 10, 1.0), 60.0)
