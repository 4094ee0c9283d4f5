"""The SQLite store: tasks in one table of a file, safe across crashes.

Each task is a row; partial indexes find the candidates the queue asks for
(the pending tasks in serving order, scheduled tasks that are due, expired
leases) without scanning finished work. The database runs in WAL mode with
``synchronous=FULL`` by default: when a transaction commits, it is on disk
and survives ``kill -9`` of the server or a power cut. Open the file with
the ``sqlite3`` shell to watch a task's life: ``SELECT * FROM tasks``.

Writes are transactions (``BEGIN IMMEDIATE``, so two servers on one file
take turns); a nested ``transaction()`` is a savepoint, which lets a
server commit many requests at once and still undo one of them alone.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager
from typing import Dict, Iterable, List, Optional

from ..errors import ConcurrentUpdate
from ..task import PRIORITY_RANK, STATUSES, Task
from .base import Store

FIELDS = Task._fields
COLUMNS = ", ".join(FIELDS)
PAYLOAD_AT = FIELDS.index("payload")
RESULT_AT = FIELDS.index("result")

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,  -- submission order
    id               TEXT NOT NULL UNIQUE,
    type             TEXT NOT NULL,
    payload          TEXT NOT NULL,                      -- JSON
    status           TEXT NOT NULL,
    priority         TEXT NOT NULL,
    rank             INTEGER NOT NULL,                   -- 0 high, 1 normal, 2 low
    created_at       REAL NOT NULL,
    execute_at       REAL NOT NULL,
    retries          INTEGER NOT NULL,
    max_retries      INTEGER NOT NULL,
    attempts         INTEGER NOT NULL,
    result           TEXT,                               -- JSON
    error            TEXT,
    worker_id        TEXT,
    lease_id         TEXT,
    lease_expires_at REAL,
    claimed_at       REAL,
    finished_at      REAL,
    updated_at       REAL NOT NULL,
    idempotency_key  TEXT UNIQUE,
    version          INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_ready ON tasks (rank, execute_at, seq) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS tasks_ready_by_type ON tasks (type, rank, execute_at, seq)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS tasks_scheduled ON tasks (execute_at) WHERE status = 'scheduled';
CREATE INDEX IF NOT EXISTS tasks_leases ON tasks (lease_expires_at) WHERE status = 'processing';
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks (status, seq);
"""

SYNCHRONOUS = ("off", "normal", "full", "extra")


def _dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class SQLiteStore(Store):
    """A store in a SQLite file (``":memory:"`` for a throwaway database)."""

    def __init__(self, path: str, synchronous: str = "full", busy_timeout: float = 10.0):
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS)}")
        self.path = path
        # isolation_level=None: we issue BEGIN/COMMIT ourselves.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                   timeout=busy_timeout)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(SCHEMA)
        self._lock = threading.RLock()
        self._depth = 0

    @contextmanager
    def transaction(self):
        with self._lock:
            if self._depth == 0:
                self._db.execute("BEGIN IMMEDIATE")
                commit, undo = "COMMIT", "ROLLBACK"
            else:
                name = f"sp{self._depth}"
                self._db.execute(f"SAVEPOINT {name}")
                commit, undo = f"RELEASE {name}", f"ROLLBACK TO {name}; RELEASE {name}"
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._depth -= 1
                for statement in undo.split("; "):
                    self._db.execute(statement)
                raise
            self._depth -= 1
            self._db.execute(commit)

    # -- rows <-> tasks ---------------------------------------------------------

    @staticmethod
    def _row(task: Task) -> list:
        row = list(task)
        row[PAYLOAD_AT] = _dumps(task.payload)
        row[RESULT_AT] = None if task.result is None else _dumps(task.result)
        return row

    @staticmethod
    def _task(row) -> Task:
        row = list(row)
        row[PAYLOAD_AT] = json.loads(row[PAYLOAD_AT])
        if row[RESULT_AT] is not None:
            row[RESULT_AT] = json.loads(row[RESULT_AT])
        return Task(*row)

    def _select(self, where: str, params=()) -> List[Task]:
        with self._lock:
            rows = self._db.execute(f"SELECT {COLUMNS} FROM tasks {where}", params).fetchall()
        return [self._task(row) for row in rows]

    # -- writes -------------------------------------------------------------------

    def insert(self, task: Task) -> None:
        marks = ", ".join("?" * (len(FIELDS) + 1))
        with self._lock:
            try:
                self._db.execute(f"INSERT INTO tasks ({COLUMNS}, rank) VALUES ({marks})",
                                 self._row(task) + [PRIORITY_RANK[task.priority]])
            except sqlite3.IntegrityError as exc:
                raise ConcurrentUpdate(f"task {task.id} or its idempotency key exists: {exc}") from None

    def update(self, task: Task) -> None:
        assignments = ", ".join(f"{name} = ?" for name in FIELDS[1:])
        with self._lock:
            cursor = self._db.execute(
                f"UPDATE tasks SET {assignments}, rank = ? WHERE id = ? AND version = ?",
                self._row(task)[1:] + [PRIORITY_RANK[task.priority], task.id, task.version - 1])
            if cursor.rowcount != 1:
                raise ConcurrentUpdate(f"task {task.id} was changed by someone else")

    # -- candidates -----------------------------------------------------------------

    def next_pending(self, types: Optional[Iterable[str]] = None, limit: int = 1) -> List[Task]:
        if types is None:
            return self._select("WHERE status = 'pending' ORDER BY rank, execute_at, seq LIMIT ?",
                                (limit,))
        types = list(types)
        marks = ", ".join("?" * len(types))
        return self._select(f"WHERE status = 'pending' AND type IN ({marks}) "
                            "ORDER BY rank, execute_at, seq LIMIT ?", (*types, limit))

    def due_scheduled(self, now: float, limit: int = 1000) -> List[Task]:
        return self._select("WHERE status = 'scheduled' AND execute_at <= ? "
                            "ORDER BY execute_at LIMIT ?", (now, limit))

    def expired_leases(self, now: float, limit: int = 1000) -> List[Task]:
        # A lease ending exactly now is still valid (see lifecycle.check_lease).
        return self._select("WHERE status = 'processing' AND lease_expires_at < ? "
                            "ORDER BY lease_expires_at LIMIT ?", (now, limit))

    def next_wakeup(self) -> Optional[float]:
        with self._lock:
            due, = self._db.execute(
                "SELECT min(t) FROM ("
                " SELECT min(execute_at) AS t FROM tasks WHERE status = 'scheduled'"
                " UNION ALL"
                " SELECT min(lease_expires_at) FROM tasks WHERE status = 'processing')").fetchone()
        return due

    # -- reads ----------------------------------------------------------------------

    def get(self, task_id: str) -> Optional[Task]:
        found = self._select("WHERE id = ?", (task_id,))
        return found[0] if found else None

    def get_by_idempotency_key(self, key: str) -> Optional[Task]:
        found = self._select("WHERE idempotency_key = ?", (key,))
        return found[0] if found else None

    def list(self, status=None, type=None, limit=100, offset=0) -> List[Task]:
        conditions, params = [], []
        if status is not None:
            conditions.append("status = ?")
            params.append(status)
        if type is not None:
            conditions.append("type = ?")
            params.append(type)
        where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
        return self._select(f"{where}ORDER BY seq LIMIT ? OFFSET ?", (*params, limit, offset))

    def count_by_status(self) -> Dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, count(*) FROM tasks GROUP BY status").fetchall()
        counts = dict.fromkeys(STATUSES, 0)
        counts.update(rows)
        return counts

    def close(self) -> None:
        with self._lock:
            self._db.close()
