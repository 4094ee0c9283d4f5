"""queue_system: the lesson's task queue, made real.

The queue's rules (``lifecycle``) are written once and applied by
``TaskQueue`` over a store (``stores``) on a clock that is passed in. On
top of it: an HTTP API (``server``), a client (``client``), workers
(``worker``) and a command line (``python -m queue_system``).
"""

from .backoff import Backoff
from .clock import ManualClock, system_clock
from .errors import InvalidTask, QueueError, TaskConflict, TaskNotFound
from .queue import TaskQueue, sequential_ids
from .stores import MemoryStore, SQLiteStore, open_store
from .task import PRIORITIES, STATUSES, Task

__all__ = ["Backoff", "ManualClock", "system_clock", "InvalidTask", "QueueError",
           "TaskConflict", "TaskNotFound", "TaskQueue", "sequential_ids", "MemoryStore",
           "SQLiteStore", "open_store", "PRIORITIES", "STATUSES", "Task"]
