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
SQLite's own errors (a locked or broken file) leave as ``StoreUnavailable``,
the contract's one error for an engine that failed; a full disk leaves as
``StoreFull`` (the API's 507), which says what to do about it.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
from functools import lru_cache
from typing import Dict, Iterable, List, Optional

from .. import json_codec
from ..errors import ConcurrentUpdate, StoreFull, StoreUnavailable
from ..task import PRIORITY_RANK, STATUSES, Task
from .base import Store

FIELDS = Task._fields
COLUMNS = ", ".join(FIELDS)
PAYLOAD_AT = FIELDS.index("payload")
RESULT_AT = FIELDS.index("result")
SEQ_AT = FIELDS.index("seq")

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    seq              INTEGER PRIMARY KEY,                -- place in line, given at insert
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
    idempotency_key  TEXT,                               -- unique when set
    version          INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS tasks_idempotency ON tasks (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_ready ON tasks (rank, execute_at, seq) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS tasks_ready_by_type ON tasks (type, rank, execute_at, seq)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS tasks_scheduled ON tasks (execute_at) WHERE status = 'scheduled';
CREATE INDEX IF NOT EXISTS tasks_leases ON tasks (lease_expires_at) WHERE status = 'processing';
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks (status, seq);

-- How many tasks are in each status, kept up to date by triggers as tasks change:
-- counting costs one small read, however many tasks are stored.
CREATE TABLE IF NOT EXISTS counts (status TEXT PRIMARY KEY, tasks INTEGER NOT NULL) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS counts_insert AFTER INSERT ON tasks BEGIN
    UPDATE counts SET tasks = tasks + 1 WHERE status = NEW.status;
END;
CREATE TRIGGER IF NOT EXISTS counts_delete AFTER DELETE ON tasks BEGIN
    UPDATE counts SET tasks = tasks - 1 WHERE status = OLD.status;
END;
CREATE TRIGGER IF NOT EXISTS counts_update AFTER UPDATE OF status ON tasks
WHEN OLD.status <> NEW.status BEGIN
    UPDATE counts SET tasks = tasks - 1 WHERE status = OLD.status;
    UPDATE counts SET tasks = tasks + 1 WHERE status = NEW.status;
END;

-- The highest seq ever given. A new task takes the place after it, even when the
-- tasks that held the last places have been purged since (a row number would be
-- given again, and a reader paging with after= would miss the new task).
CREATE TABLE IF NOT EXISTS line (last_seq INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS line_insert AFTER INSERT ON tasks BEGIN
    UPDATE line SET last_seq = NEW.seq WHERE last_seq < NEW.seq;
END;
"""
# A file made before the counts and the line were kept: count once, as it is opened.
_STATUS_ROWS = ", ".join(f"('{status}')" for status in STATUSES)
FILL_COUNTS = (f"INSERT INTO counts (status, tasks) SELECT column1, (SELECT count(*) FROM tasks "
               f"WHERE status = column1) FROM (VALUES {_STATUS_ROWS}) "
               "WHERE NOT EXISTS (SELECT 1 FROM counts)")
FILL_LINE = ("INSERT INTO line (last_seq) SELECT coalesce(max(seq), 0) FROM tasks "
             "WHERE NOT EXISTS (SELECT 1 FROM line)")

SYNCHRONOUS = ("off", "normal", "full", "extra")

# Statements, built once. The candidate queries name their partial index
# (INDEXED BY): left to itself the planner prefers ``tasks_by_status`` and
# then sorts every pending task for each claim, which costs O(backlog).
SELECT = f"SELECT {COLUMNS} FROM tasks "
# The new task's seq is the place after the line's last (see ``line`` above).
INSERT = (f"INSERT INTO tasks ({COLUMNS}, rank) VALUES ("
          + ", ".join("(SELECT last_seq + 1 FROM line)" if name == "seq" else "?"
                      for name in FIELDS) + ", ?)")
# The columns a transition may change. ``id`` is the key; ``type`` and
# ``idempotency_key`` are indexed and never change in the lifecycle, so the
# usual UPDATE leaves them (and their index pages: fewer pages to write and
# fsync per commit) alone and only checks them. If they did change, UPDATE_ALL
# replaces the whole row, as the contract says.
FIXED = ("id", "type", "idempotency_key", "seq")
MUTABLE = tuple(name for name in FIELDS if name not in FIXED)
MUTABLE_AT = tuple(FIELDS.index(name) for name in MUTABLE)
UPDATE = (f"UPDATE tasks SET {', '.join(f'{name} = ?' for name in MUTABLE)}, rank = ? "
          "WHERE id = ? AND version = ? AND type = ? AND idempotency_key IS ?")
UPDATE_ALL = (f"UPDATE tasks SET {', '.join(f'{name} = ?' for name in FIELDS[1:] if name != 'seq')}"
              ", rank = ? WHERE id = ? AND version = ?")
NEXT_PENDING = (SELECT + "INDEXED BY tasks_ready WHERE status = 'pending' "
                "ORDER BY rank, execute_at, seq LIMIT ?")
PENDING_OF_TYPE = (f"SELECT {COLUMNS}, rank FROM tasks INDEXED BY tasks_ready_by_type "
                   "WHERE status = 'pending' AND type = ? ORDER BY rank, execute_at, seq LIMIT ?")
DUE_SCHEDULED = (SELECT + "INDEXED BY tasks_scheduled WHERE status = 'scheduled' "
                 "AND execute_at <= ? ORDER BY execute_at LIMIT ?")
EXPIRED_LEASES = (SELECT + "INDEXED BY tasks_leases WHERE status = 'processing' "
                  "AND lease_expires_at < ? ORDER BY lease_expires_at LIMIT ?")
NEXT_WAKEUP = ("SELECT min(t) FROM ("
               " SELECT min(execute_at) AS t FROM tasks INDEXED BY tasks_scheduled"
               " WHERE status = 'scheduled'"
               " UNION ALL"
               " SELECT min(lease_expires_at) FROM tasks INDEXED BY tasks_leases"
               " WHERE status = 'processing')")
# Finished tasks in submission order, the oldest first: a purge stops at its limit.
DELETE_FINISHED = ("DELETE FROM tasks WHERE seq IN (SELECT seq FROM tasks INDEXED BY tasks_by_status"
                   " WHERE status = ? AND finished_at <= ? LIMIT ?)")
BY_ID = SELECT + "WHERE id = ?"
BY_IDEMPOTENCY_KEY = SELECT + "WHERE idempotency_key = ?"


_dumps = json_codec.dumps


MAX_MERGED_TYPES = 32


@lru_cache(maxsize=MAX_MERGED_TYPES)
def _pending_of_types(count: int) -> str:
    arms = " UNION ALL ".join([f"SELECT * FROM ({PENDING_OF_TYPE})"] * count)
    return f"SELECT {COLUMNS} FROM ({arms}) ORDER BY rank, execute_at, seq LIMIT ?"


def engine_failed(exc: BaseException) -> bool:
    """An error of the engine (a locked, broken or full file), not of our use of it:
    a ProgrammingError or an IntegrityError is a bug here, and stays what it is."""
    return isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError


def unavailable(exc: sqlite3.Error) -> Exception:
    """The contract's error for an engine failure: ``StoreFull`` (507) for a full disk,
    else ``StoreUnavailable`` (503)."""
    if getattr(exc, "sqlite_errorname", None) == "SQLITE_FULL":
        return StoreFull(f"the disk of the store is full, nothing was saved: SQLite: {exc}")
    return StoreUnavailable(f"SQLite: {exc}")


def engine_errors(method):
    """Let SQLite's engine failures out of ``method`` as the contract's errors.

    (A plain try/except costs nothing until it catches; this wrapper adds one call,
    well under a microsecond, to operations that each cost tens of them.)"""
    @functools.wraps(method)
    def translated(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            if not engine_failed(exc):
                raise
            raise unavailable(exc) from exc
    return translated


class SQLiteStore(Store):
    """A store in a SQLite file (``":memory:"`` for a throwaway database)."""

    @engine_errors
    def __init__(self, path: str, synchronous: str = "full", busy_timeout: float = 10.0,
                 page_size: int = 1024):
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS)}")
        self.path = path
        # sqlite:///relative/path, sqlite:////absolute/path (the usual spelling).
        self.url = f"sqlite:///{path}"
        self.folder = None if path == ":memory:" else os.path.dirname(os.path.abspath(path))
        # isolation_level=None: we issue BEGIN/COMMIT ourselves.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                   timeout=busy_timeout)
        try:
            self._open(synchronous, page_size)
        except BaseException:
            self._db.close()
            raise
        self._lock = threading.RLock()
        self._depth = 0

    def _open(self, synchronous: str, page_size: int) -> None:
        # Small pages for a new file: a commit writes every page it changed
        # whole into the WAL, and one enqueue changes a page in each of ~5
        # b-trees; 1 KiB pages make that commit (and its fsync) ~4x smaller
        # than the default 4 KiB. An existing file keeps its page size.
        self._db.execute(f"PRAGMA page_size={page_size}")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        # 32 MiB of pages kept in memory (SQLite's default is 2): with a million tasks the
        # indexes' upper pages no longer fit in 2, and each claim then reads them again.
        self._db.execute("PRAGMA cache_size=-32768")
        self._db.executescript(SCHEMA)
        self._db.execute("BEGIN IMMEDIATE")  # two processes opening a file count it once
        self._db.execute(FILL_COUNTS)
        self._db.execute(FILL_LINE)
        self._db.execute("COMMIT")

    undoes_nested_blocks = True  # a nested transaction() is a savepoint

    def transaction(self) -> "_Transaction":
        return _Transaction(self)

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
        row[PAYLOAD_AT] = json_codec.loads(row[PAYLOAD_AT])
        if row[RESULT_AT] is not None:
            row[RESULT_AT] = json_codec.loads(row[RESULT_AT])
        return Task(*row)

    def _select(self, sql: str, params=()) -> List[Task]:
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [self._task(row) for row in rows]

    # -- writes -------------------------------------------------------------------

    @engine_errors
    def insert(self, task: Task) -> Task:
        row = self._row(task)
        del row[SEQ_AT]  # the statement places the task after the line's last
        with self._lock:
            try:
                seq = self._db.execute(INSERT, row + [PRIORITY_RANK[task.priority]]).lastrowid
            except sqlite3.IntegrityError as exc:
                raise ConcurrentUpdate(f"task {task.id} or its idempotency key exists: {exc}") from None
        return task._replace(seq=seq)

    @engine_errors
    def update(self, task: Task) -> None:
        row = self._row(task)
        rank = PRIORITY_RANK[task.priority]
        with self._lock:
            cursor = self._db.execute(UPDATE, [row[i] for i in MUTABLE_AT] + [
                rank, task.id, task.version - 1, task.type, task.idempotency_key])
            if cursor.rowcount != 1:
                # A stale version, or a fixed column changed: write the whole row.
                cursor = self._db.execute(UPDATE_ALL, [value for at, value in enumerate(row)
                                                       if 0 < at != SEQ_AT]
                                          + [rank, task.id, task.version - 1])
            if cursor.rowcount != 1:
                raise ConcurrentUpdate(f"task {task.id} was changed by someone else")

    # -- candidates -----------------------------------------------------------------

    @engine_errors
    def next_pending(self, types: Optional[Iterable[str]] = None, limit: int = 1) -> List[Task]:
        if types is None:
            return self._select(NEXT_PENDING, (limit,))
        # One indexed, limited search per type, merged: never sorts the whole backlog.
        types = list(dict.fromkeys(types))
        if not types:
            return []
        if len(types) > MAX_MERGED_TYPES:  # SQLite caps a UNION at 500 arms
            marks = ", ".join("?" * len(types))
            return self._select(f"{SELECT}WHERE status = 'pending' AND type IN ({marks}) "
                                "ORDER BY rank, execute_at, seq LIMIT ?", (*types, limit))
        params = []
        for type in types:
            params += (type, limit)
        return self._select(_pending_of_types(len(types)), (*params, limit))

    @engine_errors
    def due_scheduled(self, now: float, limit: int = 1000) -> List[Task]:
        return self._select(DUE_SCHEDULED, (now, limit))

    @engine_errors
    def expired_leases(self, now: float, limit: int = 1000) -> List[Task]:
        # A lease ending exactly now is still valid (lifecycle.lease_expired).
        return self._select(EXPIRED_LEASES, (now, limit))

    @engine_errors
    def next_wakeup(self) -> Optional[float]:
        with self._lock:
            due, = self._db.execute(NEXT_WAKEUP).fetchone()
        return due

    # -- reads ----------------------------------------------------------------------

    @engine_errors
    def get(self, task_id: str) -> Optional[Task]:
        found = self._select(BY_ID, (task_id,))
        return found[0] if found else None

    @engine_errors
    def get_by_idempotency_key(self, key: str) -> Optional[Task]:
        found = self._select(BY_IDEMPOTENCY_KEY, (key,))
        return found[0] if found else None

    @engine_errors
    def list(self, status=None, type=None, limit=100, offset=0, after=None,
             newest_first=False) -> List[Task]:
        conditions, params = [], []
        if after is not None:  # a cursor: the index starts there, whatever the depth
            conditions.append("seq > ?")
            params.append(after)
        if status is not None:
            conditions.append("status = ?")
            params.append(status)
        if type is not None:
            conditions.append("type = ?")
            params.append(type)
        where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
        order = "seq DESC" if newest_first else "seq"
        return self._select(f"{SELECT}{where}ORDER BY {order} LIMIT ? OFFSET ?",
                            (*params, limit, offset))

    @engine_errors
    def count_by_status(self) -> Dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, tasks FROM counts").fetchall()
        counts = dict.fromkeys(STATUSES, 0)
        counts.update(rows)
        return counts

    @engine_errors
    def reusable_bytes(self) -> int:
        # DELETE gives no space back to the file system: freed pages wait on SQLite's
        # free list, and new rows fill them before the file grows.
        with self._lock:
            free, = self._db.execute("PRAGMA freelist_count").fetchone()
            size, = self._db.execute("PRAGMA page_size").fetchone()
        return free * size

    @engine_errors
    def delete_finished(self, before: float, limit: int = 1000) -> int:
        deleted = 0
        with self._lock:
            for status in ("completed", "failed"):
                if deleted < limit:
                    deleted += self._db.execute(DELETE_FINISHED,
                                                (status, before, limit - deleted)).rowcount
        return deleted

    def transaction_alive(self) -> bool:
        return self._db.in_transaction

    @engine_errors
    def close(self) -> None:
        with self._lock:
            self._db.close()


class _Transaction:
    """``with store.transaction():``: BEGIN IMMEDIATE outside, a savepoint inside.

    A plain class rather than ``@contextmanager``: it runs on every
    operation, and a generator-based context manager costs several times more.
    """

    __slots__ = ("store", "finish", "undo")

    def __init__(self, store: SQLiteStore):
        self.store = store

    def __enter__(self) -> SQLiteStore:
        store = self.store
        store._lock.acquire()
        try:
            if store._depth == 0:
                store._db.execute("BEGIN IMMEDIATE")
                self.finish, self.undo = ("COMMIT",), ("ROLLBACK",)
            else:
                name = f"sp{store._depth}"
                store._db.execute(f"SAVEPOINT {name}")
                self.finish, self.undo = (f"RELEASE {name}",), (f"ROLLBACK TO {name}", f"RELEASE {name}")
        except BaseException as exc:
            store._lock.release()
            if engine_failed(exc):  # such as a file another process holds locked
                raise unavailable(exc) from exc
            raise
        store._depth += 1
        return store

    def __exit__(self, kind, value, traceback) -> bool:
        store = self.store
        store._depth -= 1
        try:
            if kind is None:
                try:
                    for statement in self.finish:
                        store._db.execute(statement)
                except BaseException as exc:
                    # The commit failed (disk full...): leave no transaction half open.
                    if store._depth == 0 and store._db.in_transaction:
                        store._db.execute("ROLLBACK")
                    if engine_failed(exc):
                        raise unavailable(exc) from exc
                    raise
            elif store._db.in_transaction:  # else SQLite already undid everything
                for statement in self.undo:
                    store._db.execute(statement)
        except sqlite3.Error as exc:  # the ROLLBACK itself failed
            if not engine_failed(exc):
                raise
            raise unavailable(exc) from exc
        finally:
            store._lock.release()
        return False
