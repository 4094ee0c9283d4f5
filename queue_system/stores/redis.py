"""The Redis store: one queue shared by several API servers.

Every task is a JSON record in one hash; sorted sets index it, as the
SQLite store's indexes do:

==================================  =========================================
``{p}tasks`` / ``{p}versions``      id -> the task's fields / its version
``{p}pending:{type}:{rank}``        pending tasks: score ``execute_at``,
                                    member ``seq:id`` (ties in ``seq`` order),
                                    so the serving order is the task's own
``{p}scheduled``, ``{p}leases``     by ``execute_at``, by ``lease_expires_at``
``{p}status:{status}``, ``{p}all``  by ``seq``: lists paged by a cursor
``{p}finished``                     by ``finished_at``: what a purge deletes
``{p}idem``                         idempotency key -> the id of its task
``{p}counts``, ``{p}seq``           counts per status, the last place in line
==================================  =========================================

**Serialised, as the contract asks.** A transaction takes a lock key first
(``{p}lock``, with a token and an expiry), so servers sharing the Redis
server take turns, as SQLite's ``BEGIN IMMEDIATE`` makes processes sharing a
file take turns. Inside, reads go to Redis and writes are kept here; a
nested block is a mark in that list, so it can be undone alone
(``undoes_nested_blocks``). The commit is one Lua script, atomic on the
Redis server: it checks that the lock is still ours and that every task
still has the version we read, then applies every write, or none. Taking
the lock is not written to the append-only file, so a commit costs one
write to it, like SQLite's one fsync per group commit.

**Durable when Redis is.** A 202 means the commit's script has returned.
With ``appendonly yes`` and ``appendfsync always`` (recommended: see the
README), Redis has written it to its append-only file and synced it to
disk before it answers, so ``kill -9`` of Redis loses nothing that was
answered. ``appendfsync everysec`` syncs once a second instead: faster,
but a crash of the machine can lose the last second of answered tasks.
The store says at start which one the server runs.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import secrets
import threading
import time
from typing import Dict, Iterable, List, Optional, Tuple
from urllib.parse import urlsplit, urlunsplit

import redis

from .. import json_codec
from ..errors import ConcurrentUpdate, StoreUnavailable
from ..task import FINISHED, PRIORITY_RANK, STATUSES, Task, serving_order
from .base import Store

log = logging.getLogger("queue_system.store")

FIELDS = Task._fields
LOCK_SECONDS = 30.0   # a server that died holding the lock frees it after this
BUSY_SECONDS = 10.0   # how long to wait for the lock before answering 503
SEQ_DIGITS = 15       # a place in line, zero-padded, so that text order is number order

# Take the lock, unless another holds it. Not written to the append-only file nor
# replicated: a lock does not outlive its server, and writing it would cost a sync.
TAKE_LOCK = """
redis.set_repl(redis.REPL_NONE)
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
"""

# Apply a transaction's writes, all or none. KEYS[1]: the lock. ARGV: its token, the
# number of checks, the checks (hash, field, expected version, or "" for "absent"), then
# the commands, each as its number of words followed by the words. No JSON to decode:
# the script runs on the Redis server's one thread, so its cost is everybody's.
COMMIT = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 'lock lost'
end
local function free()  -- logged: a restart applies it again, should a rewrite have kept the lock
    if ARGV[1] ~= '' then redis.call('DEL', KEYS[1]) end
end
local at = 3
for _ = 1, tonumber(ARGV[2]) do
    local found = redis.call('HGET', ARGV[at], ARGV[at + 1])
    if ARGV[at + 2] == '' then
        if found then free() return 'taken ' .. ARGV[at + 1] end
    elseif found ~= ARGV[at + 2] then
        free() return 'changed ' .. ARGV[at + 1]
    end
    at = at + 3
end
while at <= #ARGV do
    local words = tonumber(ARGV[at])
    redis.call(unpack(ARGV, at + 1, at + words))
    at = at + words + 1
end
free()
return 'ok'
"""

# Give the lock back when a transaction wrote nothing: not logged, so a read costs no
# write to the append-only file (a lock copied by a rewrite expires by itself, 30 s on).
RELEASE_LOCK = """
redis.set_repl(redis.REPL_NONE)
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 'ok'
"""

# The first ``limit`` pending tasks of some types (all if none given) in serving order,
# and their records: the heads of every (type, rank) set merged by (rank, execute_at,
# seq), leaving out the ids the transaction has changed already (ARGV: prefix, limit,
# the number of those ids, those ids, then the types).
NEXT_PENDING = """
local prefix, limit, changed = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local skip = {}
for i = 4, 3 + changed do skip[ARGV[i]] = true end
local types = {}
if #ARGV > 3 + changed then
    for i = 4 + changed, #ARGV do types[#types + 1] = ARGV[i] end
else
    types = redis.call('SMEMBERS', prefix .. 'types')
end
local found = {}
for _, type in ipairs(types) do
    for rank = 0, 2 do
        local head = redis.call('ZRANGE', prefix .. 'pending:' .. type .. ':' .. rank,
                                0, limit + changed - 1, 'WITHSCORES')
        for i = 1, #head, 2 do
            local id = string.sub(head[i], %d)
            if not skip[id] then
                found[#found + 1] = {rank, tonumber(head[i + 1]), head[i], id}
            end
        end
    end
end
table.sort(found, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    if a[2] ~= b[2] then return a[2] < b[2] end
    return a[3] < b[3]
end)
local ids = {}
for i = 1, math.min(limit, #found) do ids[i] = found[i][4] end
if #ids == 0 then return {{}, {}} end
return {ids, redis.call('HMGET', prefix .. 'tasks', unpack(ids))}
""" % (SEQ_DIGITS + 2)  # the member is "seq:id": the id starts after the colon


# Redis failing, or not able to answer now: what the contract calls StoreUnavailable.
UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ReadOnlyError,
               redis.exceptions.OutOfMemoryError, redis.exceptions.MasterDownError,
               redis.exceptions.TryAgainError)
UNAVAILABLE_CODES = ("MISCONF", "OOM", "LOADING", "READONLY", "MASTERDOWN", "BUSY",
                     "NOREPLICAS", "TRYAGAIN")


def unavailable(exc: Exception) -> bool:
    return isinstance(exc, UNAVAILABLE) or (
        isinstance(exc, redis.ResponseError) and str(exc).split(" ", 1)[0] in UNAVAILABLE_CODES)


def engine_errors(method):
    """Run ``method`` under the store's lock (threads of one process take turns, and never
    see another's open transaction), and let Redis's connection and server failures out
    as the contract's ``StoreUnavailable``; any other error (a bug here) stays what it is."""
    @functools.wraps(method)
    def translated(self, *args, **kwargs):
        try:
            with self._lock:
                return method(self, *args, **kwargs)
        except redis.RedisError as exc:
            if not unavailable(exc):
                raise
            raise StoreUnavailable(f"Redis at {self.url}: {exc}") from exc
    return translated


def redact(url: str) -> str:
    """The URL without its password, to show (``/health``, the logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class RedisStore(Store):
    """Tasks on a Redis server, for several API servers sharing one queue.

    ``url`` is ``redis://[:password@]host:port/db``; keys start with ``prefix``.
    """

    undoes_nested_blocks = True  # a nested block is a mark in the list of writes

    def __init__(self, url: str = "redis://localhost:6379/0", prefix: str = "queue:",
                 busy_seconds: float = BUSY_SECONDS, lock_seconds: float = LOCK_SECONDS):
        self.url = redact(url)
        self.prefix = prefix
        self.busy_seconds, self.lock_seconds = busy_seconds, lock_seconds
        try:
            pool = redis.ConnectionPool.from_url(url, decode_responses=True, protocol=2,
                                                 socket_timeout=busy_seconds + 5)
        except ValueError as exc:
            raise ValueError(f"{self.url!r} is not a Redis URL: {exc}") from None
        # One connection, used directly: redis-py's command methods cost about twice the
        # round trip itself on loopback (measured: 70 us a HGET, against 36 us), and the
        # store makes one or two per task. The store's lock makes its threads take turns.
        self._conn = pool.make_connection()
        self._pool = pool
        self._scripts = {name: (text, hashlib.sha1(text.encode()).hexdigest())
                         for name, text in (("take_lock", TAKE_LOCK), ("commit", COMMIT),
                                            ("release", RELEASE_LOCK),
                                            ("next_pending", NEXT_PENDING))}
        self._lock = threading.RLock()  # held by a thread through its whole transaction
        self._depth = 0
        self._token = ""
        self._overlay: dict = {}   # id -> the task as this transaction wrote it (None: deleted)
        self._texts: dict = {}     # id -> that task as JSON, for the commit
        self._keys: dict = {}      # idempotency key -> id, written by this transaction
        self._deltas: dict = {}    # status -> change of its count in this transaction
        self._undo: list = []      # how to take back the overlay, keys and deltas
        # Tasks as read from Redis in this transaction: while it holds the lock nobody else
        # writes, so a second look (an update reads what it replaces) costs no round trip.
        self._read: dict = {}
        self._heads = None  # the first scheduled task and lease in Redis, read once
        self._last_seq: Optional[int] = None
        self._broken = False  # the connection broke inside the open transaction
        self.durability = self._durability()

    # -- talking to Redis ---------------------------------------------------------------

    def _call(self, *args):
        """One command, its answer."""
        conn = self._conn
        try:
            conn.send_command(*args)
            return conn.read_response()
        except (redis.ResponseError, redis.DataError):
            raise  # an error answer, or a command refused before it was sent: still in step
        except BaseException:
            self._lost()
            raise

    def _calls(self, *commands):
        """Several commands in one round trip, their answers."""
        conn = self._conn
        try:
            conn.send_packed_command(conn.pack_commands(commands))
            answers, failure = [], None
            for _ in commands:  # read every answer, or the next command would get this one's
                try:
                    answers.append(conn.read_response())
                except redis.ResponseError as exc:
                    failure = failure or exc
        except BaseException:
            self._lost()
            raise
        if failure is not None:
            raise failure
        return answers

    def _lost(self) -> None:
        """The connection broke (or may be out of step): drop it (the next command connects
        again), and give up the open transaction: what it read may be stale, its lock may
        be gone. Its token is kept, to give the lock back if it is still ours."""
        self._conn.disconnect()
        if self._depth:
            self._broken = True  # transaction_alive() is now False

    def _script(self, name: str, keys: list, args: list):
        """Run one of the store's Lua scripts (loaded into Redis the first time)."""
        text, sha = self._scripts[name]
        try:
            return self._call("EVALSHA", sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:  # a new or restarted server
            self._call("SCRIPT", "LOAD", text)
            return self._call("EVALSHA", sha, len(keys), *keys, *args)

    @engine_errors
    def _durability(self) -> str:
        """What a commit's answer means on this server; a warning if not durable."""
        try:
            answer = self._call("CONFIG", "GET", "append*")
            config = dict(zip(answer[::2], answer[1::2]))
        except redis.ResponseError:  # CONFIG may be disabled (a managed Redis): say so
            return "unknown (CONFIG is not allowed on this server)"
        if config.get("appendonly") != "yes":
            log.warning("Redis at %s keeps no append-only file: a crash loses tasks that were "
                        "answered 202. Run it with --appendonly yes --appendfsync always.",
                        self.url)
            return "none (appendonly no)"
        fsync = config.get("appendfsync")
        if fsync != "always":
            log.warning("Redis at %s syncs its append-only file %s: a crash of the machine "
                        "can lose tasks answered in the last second. --appendfsync always "
                        "syncs before every answer.", self.url, fsync)
        return f"appendonly yes, appendfsync {fsync}"

    # -- keys ---------------------------------------------------------------------------

    def _pending_key(self, task: Task) -> str:
        return f"{self.prefix}pending:{task.type}:{PRIORITY_RANK[task.priority]}"

    @staticmethod
    def _member(task: Task) -> str:
        return f"{task.seq:0{SEQ_DIGITS}d}:{task.id}"

    def _index(self, task: Task, changes: "_Changes") -> None:
        """Put ``task`` in the indexes of its status."""
        p, status = self.prefix, task.status
        changes.add("ZADD", f"{p}status:{status}", task.seq, task.id)
        if status == "pending":
            changes.add("ZADD", self._pending_key(task), repr(task.execute_at), self._member(task))
        elif status == "scheduled":
            changes.add("ZADD", f"{p}scheduled", repr(task.execute_at), task.id)
        elif status == "processing":
            changes.add("ZADD", f"{p}leases", repr(task.lease_expires_at), task.id)
        else:
            changes.add("ZADD", f"{p}finished", repr(task.finished_at), task.id)

    def _unindex(self, task: Task, changes: "_Changes") -> None:
        """Take ``task`` (as stored) out of the indexes of its status."""
        p, status = self.prefix, task.status
        changes.add("ZREM", f"{p}status:{status}", task.id)
        if status == "pending":
            changes.add("ZREM", self._pending_key(task), self._member(task))
        elif status == "scheduled":
            changes.add("ZREM", f"{p}scheduled", task.id)
        elif status == "processing":
            changes.add("ZREM", f"{p}leases", task.id)
        else:
            changes.add("ZREM", f"{p}finished", task.id)

    def _changes(self) -> Tuple[list, list]:
        """What the commit must check and write: for each task this transaction touched,
        the difference between what it read (or nothing, for a new task) and what it
        leaves. A task written several times (submitted, then handed out at once) is
        written once."""
        p, read = self.prefix, self._read
        checks: list = []
        changes = _Changes()
        # Keys of tasks deleted here may be taken again by tasks made here (a purge, then
        # a submit with the same key, in one batch): no need for those to be free before.
        freed = {old.idempotency_key for task_id, old in read.items()
                 if old is not None and self._overlay.get(task_id, old) is None}
        for task_id, new in self._overlay.items():
            old = read.get(task_id)
            if old is None and new is None:
                continue  # made and deleted within the transaction
            checks += [f"{p}versions", task_id, "" if old is None else str(old.version)]
            # Another task under the same id (deleted, then made again): a delete and an insert.
            replaced = old is not None and new is not None and old.seq != new.seq
            if old is not None:
                self._unindex(old, changes)
                changes.add("HINCRBY", f"{p}counts", old.status, -1)
            if new is None or replaced:
                changes.add("ZREM", f"{p}all", task_id)
                if old.idempotency_key is not None:
                    changes.add("HDEL", f"{p}idem", old.idempotency_key)
            if new is None:
                changes.add("HDEL", f"{p}tasks", task_id)
                changes.add("HDEL", f"{p}versions", task_id)
                continue
            self._index(new, changes)
            changes.add("HINCRBY", f"{p}counts", new.status, 1)
            changes.add("HSET", f"{p}tasks", task_id, self._texts[task_id])
            changes.add("HSET", f"{p}versions", task_id, str(new.version))
            if old is None or replaced or old.type != new.type:
                changes.add("SADD", f"{p}types", new.type)
            if old is None or replaced:
                changes.add("ZADD", f"{p}all", new.seq, task_id)
                key = new.idempotency_key
                if key is not None:
                    if key not in freed:
                        checks += [f"{p}idem", key, ""]
                    changes.add("HSET", f"{p}idem", key, task_id)
        if self._last_seq is not None:
            changes.add("SET", f"{p}seq", self._last_seq)
        return checks, changes.words()

    @staticmethod
    def _task(text: Optional[str]) -> Optional[Task]:
        return None if text is None else Task(*json_codec.loads(text))

    # -- transactions -------------------------------------------------------------------

    def transaction(self) -> "_Transaction":
        return _Transaction(self)

    def _begin(self) -> None:
        token = secrets.token_hex(8)
        deadline = time.monotonic() + self.busy_seconds
        pause = 0.0005
        try:
            while not self._script("take_lock", [f"{self.prefix}lock"],
                                   [token, int(self.lock_seconds * 1000)]):
                if time.monotonic() > deadline:
                    raise StoreUnavailable(f"Redis at {self.url}: the queue stayed locked by "
                                           f"another server for {self.busy_seconds:g} s")
                time.sleep(pause)
                pause = min(pause * 2, 0.01)
        except redis.RedisError:
            self._give_back(token)  # the answer was lost: the lock may be ours all the same
            raise
        self._token, self._broken = token, False
        self._last_seq = None

    def _give_back(self, token: str) -> None:
        """Free the lock if ``token`` still holds it, at once rather than in 30 s; if Redis
        cannot be reached, it expires by itself."""
        try:
            self._script("release", [f"{self.prefix}lock"], [token])
        except redis.RedisError:
            self._conn.disconnect()

    def _end(self, commit: bool) -> None:
        token = self._token
        try:
            if self._broken:  # the connection broke inside the transaction
                if commit:
                    raise StoreUnavailable(f"Redis at {self.url}: the connection was lost "
                                           "during the transaction; nothing was saved")
                answer = "ok"
            elif commit and self._overlay:
                checks, words = self._changes()
                answer = self._script("commit", [f"{self.prefix}lock"],
                                      [token, len(checks) // 3, *checks, *words])
                token = ""  # the script freed the lock, whatever it answered
            else:
                answer = "ok"  # nothing written (or undone): only the lock to give back
        finally:
            self._token, self._broken = "", False
            self._overlay, self._texts, self._keys, self._deltas, self._undo = {}, {}, {}, {}, []
            self._read, self._heads = {}, None
            if token:  # a failed commit, or none: give the lock back at once, not in 30 s
                self._give_back(token)
        if answer == "lock lost":
            raise StoreUnavailable(f"Redis at {self.url}: this server held the lock longer "
                                   f"than {self.lock_seconds:g} s; nothing was saved")
        if answer != "ok":
            raise ConcurrentUpdate(f"task {answer.split(' ', 1)[1]} was changed by someone "
                                   "else; nothing was saved")

    def _write(self, task_id: str, task: Optional[Task],
               moves: Iterable[Tuple[str, int]] = ()) -> None:
        """Keep a write for the commit (``_changes``), and let this transaction read it.
        The record is written as JSON here, so that one that cannot be (a value JSON does
        not have) is refused in its own block, not at the commit of the whole batch."""
        text = None if task is None else json_codec.dumps(list(task))
        self._undo.append(("overlay", task_id, (self._overlay.get(task_id, _ABSENT),
                                                self._texts.get(task_id))))
        self._overlay[task_id] = task
        self._texts[task_id] = text
        for status, change in moves:
            self._undo.append(("count", status, change))
            self._deltas[status] = self._deltas.get(status, 0) + change

    def _mark(self) -> int:
        return len(self._undo)

    def _undo_to(self, undo: int) -> None:
        while len(self._undo) > undo:
            kind, key, value = self._undo.pop()
            if kind == "overlay":
                task, text = value
                if task is _ABSENT:
                    self._overlay.pop(key, None)
                    self._texts.pop(key, None)
                else:
                    self._overlay[key], self._texts[key] = task, text
            elif kind == "key":
                self._keys.pop(key, None)
            elif kind == "count":
                self._deltas[key] -= value
            elif kind == "seq":
                self._last_seq = value

    def _in_transaction(self, method, *args):
        """A write outside any transaction is a transaction of its own."""
        with self.transaction():
            return method(*args)

    # -- writes -------------------------------------------------------------------------

    @engine_errors
    def insert(self, task: Task) -> Task:
        if self._depth == 0:
            return self._in_transaction(self.insert, task)
        p = self.prefix
        if self.get(task.id) is not None:
            raise ConcurrentUpdate(f"task {task.id} already exists")
        key = task.idempotency_key
        if key is not None and self.get_by_idempotency_key(key) is not None:
            raise ConcurrentUpdate(f"idempotency key {key!r} is taken")
        if self._last_seq is None:
            self._last_seq = int(self._call("GET", f"{p}seq") or 0)
        self._undo.append(("seq", None, self._last_seq))
        self._last_seq += 1
        task = task._replace(seq=self._last_seq)
        if key is not None:
            self._undo.append(("key", key, None))
            self._keys[key] = task.id
        self._write(task.id, task, [(task.status, 1)])
        return task

    @engine_errors
    def update(self, task: Task) -> None:
        if self._depth == 0:
            return self._in_transaction(self.update, task)
        old = self.get(task.id)
        if old is None or old.version != task.version - 1:
            raise ConcurrentUpdate(f"task {task.id} was changed by someone else")
        if task.seq != old.seq:  # the place in line is the store's to give
            task = task._replace(seq=old.seq)
        if old.idempotency_key != task.idempotency_key:
            raise ConcurrentUpdate(f"task {task.id}: an idempotency key does not change")
        moves = [(old.status, -1), (task.status, 1)] if old.status != task.status else ()
        self._write(task.id, task, moves)

    @engine_errors
    def delete_finished(self, before: float, limit: int = 1000) -> int:
        if self._depth == 0:
            return self._in_transaction(self.delete_finished, before, limit)
        ids = self._call("ZRANGEBYSCORE", f"{self.prefix}finished", "-inf", before,
                         "LIMIT", 0, limit)
        ids += [task.id for task in self._overlay.values()  # finished within this batch
                if task is not None and task.status in FINISHED and task.id not in ids]
        deleted = 0
        for task in self._get_many(ids):
            if deleted == limit:
                break
            if task is None or task.status not in FINISHED or task.finished_at > before:
                continue  # changed by this very transaction
            self._write(task.id, None, [(task.status, -1)])
            deleted += 1
        return deleted

    # -- reads --------------------------------------------------------------------------

    def _get_many(self, ids: List[str]) -> List[Optional[Task]]:
        """The tasks with these ids, as this transaction sees them."""
        overlay, read = self._overlay, self._read
        missing = [task_id for task_id in ids if task_id not in overlay and task_id not in read]
        if missing:
            found = zip(missing, self._call("HMGET", f"{self.prefix}tasks", *missing))
            fresh = {task_id: self._task(text) for task_id, text in found}
            if self._depth:
                read.update(fresh)
        else:
            fresh = {}
        return [overlay[task_id] if task_id in overlay
                else read[task_id] if task_id in read else fresh[task_id] for task_id in ids]

    @engine_errors
    def prefetch(self, task_ids) -> None:
        if self._depth and task_ids:
            self._get_many(list(task_ids))  # kept in the transaction's reads

    @engine_errors
    def get(self, task_id: str) -> Optional[Task]:
        return self._get_many([task_id])[0]

    @engine_errors
    def get_by_idempotency_key(self, key: str) -> Optional[Task]:
        task_id = self._keys.get(key) or self._call("HGET", f"{self.prefix}idem", key)
        return None if task_id is None else self.get(task_id)

    def _written(self, status: str) -> List[Task]:
        """Tasks this transaction has put in ``status``, not yet in Redis's indexes."""
        return [task for task in self._overlay.values()
                if task is not None and task.status == status]

    @engine_errors
    def next_pending(self, types: Optional[Iterable[str]] = None, limit: int = 1) -> List[Task]:
        types = None if types is None else list(dict.fromkeys(types))
        if types == []:
            return []
        # Tasks this transaction changed may still sit in the indexes: the script skips them.
        changed = list(self._overlay)
        ids, records = self._script("next_pending", [],
                                    [self.prefix, limit, len(changed), *changed, *(types or ())])
        found = {}
        for task_id, text in zip(ids, records):
            task = self._task(text)
            if self._depth:
                self._read[task_id] = task
            if task is not None and task.status == "pending":
                found[task_id] = task
        for task in self._written("pending"):
            if types is None or task.type in types:
                found[task.id] = task
        return sorted(found.values(), key=serving_order)[:limit]

    def _until(self, key: str, now: float, limit: int, strict: bool, status: str,
               when) -> List[Task]:
        bound = f"({now}" if strict else now
        ids = self._call("ZRANGEBYSCORE", key, "-inf", bound, "LIMIT", 0,
                         limit + len(self._overlay))
        found = {task.id: task for task in self._get_many(ids)
                 if task is not None and task.status == status}
        for task in self._written(status):
            found[task.id] = task
        due = [task for task in found.values()
               if when(task) < now or (not strict and when(task) == now)]
        return sorted(due, key=when)[:limit]

    @engine_errors
    def due_scheduled(self, now: float, limit: int = 1000) -> List[Task]:
        return self._until(f"{self.prefix}scheduled", now, limit, False, "scheduled",
                           _execute_at)

    @engine_errors
    def expired_leases(self, now: float, limit: int = 1000) -> List[Task]:
        # A lease ending exactly now is still valid (lifecycle.lease_expired).
        return self._until(f"{self.prefix}leases", now, limit, True, "processing",
                           _lease_end)

    @engine_errors
    def due(self, now: float, limit: int = 1000):
        # Asked before every claim, and nearly always "nothing": one round trip says so.
        wakeup = self.next_wakeup()
        if wakeup is None or wakeup > now:
            return (), ()
        return self.due_scheduled(now, limit), self.expired_leases(now, limit)

    @engine_errors
    def next_wakeup(self) -> Optional[float]:
        p = self.prefix
        heads = self._heads  # asked before every claim: once per transaction is enough
        if heads is None:
            heads = self._calls(("ZRANGE", f"{p}scheduled", 0, 0, "WITHSCORES"),
                                ("ZRANGE", f"{p}leases", 0, 0, "WITHSCORES"))
            if self._depth:
                self._heads = heads
        # (A head this transaction has changed since only makes the answer early, never late.)
        times = [float(head[1]) for head in heads if head]
        times += [_execute_at(task) for task in self._written("scheduled")]
        times += [_lease_end(task) for task in self._written("processing")]
        return min(times) if times else None

    @engine_errors
    def list(self, status=None, type=None, limit=100, offset=0, after=None,
             newest_first=False) -> List[Task]:
        key = f"{self.prefix}all" if status is None else f"{self.prefix}status:{status}"
        floor = -1 if after is None else after  # only tasks whose seq is above it

        def wanted(task: Optional[Task]) -> bool:
            return task is not None and task.seq > floor \
                and (status is None or task.status == status) \
                and (type is None or task.type == type)
        def before(seq: int) -> bool:  # at or before the cursor, in the order listed
            return seq >= cursor if newest_first else seq <= cursor
        found: Dict[str, Task] = {}
        cursor, exhausted, passed_over = None, False, None
        # An offset with no type to filter: Redis passes over the tasks itself, reading no
        # record, as far as it can be sure. Each task this transaction wrote moves the
        # places after it by one at most (taken out of the list, or put in).
        skip = max(0, offset - len(self._overlay)) if type is None else 0
        if skip:
            answer = self._call(*self._range(key, newest_first, floor, None, skip - 1, 1))
            if not answer:
                return []  # fewer tasks than the offset, whatever this transaction wrote
            cursor = int(float(answer[1]))  # the last task passed over
            touched = list(self._overlay)
            scores = self._call("ZMSCORE", key, *touched) if touched else []
            taken_out = sum(1 for score in scores
                            if score is not None and int(float(score)) > floor
                            and before(int(float(score))))
            put_in = sum(1 for task in self._overlay.values() if wanted(task)
                         and before(task.seq))
            passed_over = cursor
            offset -= skip - taken_out + put_in  # the places of the list passed over
        # Walk the index by seq from a cursor (not by offset: another server's commits
        # between two steps would shift an offset), until enough tasks match.
        want, chunk = offset + limit, min(max(offset + limit, 100), 1000)
        while len(found) < want:
            answer = self._call(*self._range(key, newest_first, floor, cursor, 0, chunk))
            ids = answer[::2]
            for task in self._get_many(ids):  # as this transaction sees them
                if wanted(task):
                    found[task.id] = task
            if len(ids) < chunk:
                exhausted = True
                break
            cursor = int(float(answer[-1]))
        # Tasks this transaction wrote into the list (made, or moved into the status), up
        # to where the walk stopped: beyond it, Redis may hold tasks that come before them.
        # (And after the stretch Redis passed over, counted above.)
        for task in self._overlay.values():
            if wanted(task) and task.id not in found and (
                    exhausted or cursor is None
                    or (task.seq > cursor if newest_first else task.seq < cursor)) and (
                    passed_over is None or (task.seq < passed_over if newest_first
                                            else task.seq > passed_over)):
                found[task.id] = task
        ordered = sorted(found.values(), key=_seq, reverse=newest_first)
        return ordered[offset:offset + limit]

    @staticmethod
    def _range(key: str, newest_first: bool, floor: int, cursor: Optional[int], start: int,
               count: int) -> tuple:
        """The command for ``count`` members of ``key`` after ``cursor`` (a seq, excluded;
        None: from the first) and above ``floor``, skipping ``start``, with their seqs."""
        if newest_first:
            high = "+inf" if cursor is None else f"({cursor}"
            return ("ZREVRANGEBYSCORE", key, high, f"({floor}", "WITHSCORES",
                    "LIMIT", start, count)
        low = f"({floor}" if cursor is None else f"({cursor}"
        return ("ZRANGEBYSCORE", key, low, "+inf", "WITHSCORES", "LIMIT", start, count)

    @engine_errors
    def count_by_status(self) -> Dict[str, int]:
        answer = self._call("HGETALL", f"{self.prefix}counts")
        stored = dict(zip(answer[::2], answer[1::2]))
        return {status: int(stored.get(status, 0)) + self._deltas.get(status, 0)
                for status in STATUSES}

    def transaction_alive(self) -> bool:
        return self._depth == 0 or not self._broken

    def close(self) -> None:
        self._conn.disconnect()
        self._pool.disconnect()


_ABSENT = object()


class _Changes:
    """A commit's writes, gathered by command and key: one ZADD per sorted set with all
    its members, one HSET per hash... so the script makes few calls, whatever the batch.
    Removals are written before additions (a task leaving a set and coming back), and the
    changes to one count are summed into one HINCRBY."""

    ORDER = ("ZREM", "HDEL", "ZADD", "HSET", "SADD", "SET")
    # Lua's unpack takes about 8,000 values at most: a longer command is split in several.
    # (Splitting never changes the outcome: each piece adds or removes its own members.)
    CHUNK = 1000

    def __init__(self):
        self._by: Dict[Tuple[str, str], list] = {}  # (command, key) -> its words after the key
        self._sums: Dict[Tuple[str, str], int] = {}  # (hash, field) -> the change to its count

    def add(self, command: str, key: str, *words) -> None:
        if command == "HINCRBY":
            field, change = words
            self._sums[key, field] = self._sums.get((key, field), 0) + int(change)
        else:
            self._by.setdefault((command, key), []).extend(words)

    def words(self) -> list:
        out = []
        for (command, key), words in sorted(self._by.items(),
                                            key=lambda item: self.ORDER.index(item[0][0])):
            words = [str(word) for word in words]
            for start in range(0, len(words), self.CHUNK):
                piece = words[start:start + self.CHUNK]
                out += [2 + len(piece), command, key, *piece]
        for (key, field), change in self._sums.items():
            if change:
                out += [4, "HINCRBY", key, field, str(change)]
        return out


def _seq(task: Task) -> int:
    return task.seq


def _execute_at(task: Task) -> float:
    return task.execute_at


def _lease_end(task: Task) -> float:
    return task.lease_expires_at


class _Transaction:
    """``with store.transaction():``: the lock and the commit outside, a mark inside."""

    __slots__ = ("store", "mark")

    def __init__(self, store: RedisStore):
        self.store = store

    def __enter__(self) -> RedisStore:
        store = self.store
        store._lock.acquire()
        if store._depth == 0:
            try:
                store._begin()
            except BaseException as exc:
                store._lock.release()
                if isinstance(exc, redis.RedisError) and unavailable(exc):
                    raise StoreUnavailable(f"Redis at {store.url}: {exc}") from exc
                raise
        self.mark = store._mark()
        store._depth += 1
        return store

    def __exit__(self, kind, value, traceback) -> bool:
        store = self.store
        try:
            store._depth -= 1
            if store._depth > 0:
                if kind is not None:
                    store._undo_to(self.mark)  # this block only
                return False
            try:
                store._end(commit=kind is None)
            except redis.RedisError as exc:
                if not unavailable(exc):
                    raise
                raise StoreUnavailable(f"Redis at {store.url}: {exc} (if the connection broke "
                                       "as the commit was sent, it may have been applied)"
                                       ) from exc
        finally:
            store._lock.release()
        return False
