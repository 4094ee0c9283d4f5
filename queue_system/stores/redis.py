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
``{p}idem:{key}``                   an idempotency key -> its task's id
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
local at = 3
for _ = 1, tonumber(ARGV[2]) do
    local found = redis.call('HGET', ARGV[at], ARGV[at + 1])
    if ARGV[at + 2] == '' then
        if found then return 'taken ' .. ARGV[at + 1] end
    elseif found ~= ARGV[at + 2] then
        return 'changed ' .. ARGV[at + 1]
    end
    at = at + 3
end
while at <= #ARGV do
    local words = tonumber(ARGV[at])
    redis.call(unpack(ARGV, at + 1, at + words))
    at = at + words + 1
end
if ARGV[1] ~= '' then
    redis.set_repl(redis.REPL_NONE)
    redis.call('DEL', KEYS[1])
end
return 'ok'
"""

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


def engine_errors(method):
    """Run ``method`` under the store's lock (threads of one process take turns, and never
    see another's open transaction), and let Redis's connection and server failures out
    as the contract's ``StoreUnavailable``; any other error (a bug here) stays what it is."""
    @functools.wraps(method)
    def translated(self, *args, **kwargs):
        try:
            with self._lock:
                return method(self, *args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(f"Redis at {self.url}: {exc}") from exc
        except redis.ResponseError as exc:
            if str(exc).split(" ", 1)[0] in ("MISCONF", "OOM", "LOADING", "READONLY",
                                               "MASTERDOWN", "BUSY", "NOREPLICAS"):
                raise StoreUnavailable(f"Redis at {self.url}: {exc}") from exc
            raise
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
        self._keys: dict = {}      # idempotency key -> id, written by this transaction
        self._deltas: dict = {}    # status -> change of its count in this transaction
        self._undo: list = []      # how to take back the overlay, keys and deltas
        # Tasks as read from Redis in this transaction: while it holds the lock nobody else
        # writes, so a second look (an update reads what it replaces) costs no round trip.
        self._read: dict = {}
        self._heads = None  # the first scheduled task and lease in Redis, read once
        self._last_seq: Optional[int] = None
        self.durability = self._durability()

    # -- talking to Redis ---------------------------------------------------------------

    def _call(self, *args):
        """One command, its answer."""
        conn = self._conn
        try:
            conn.send_command(*args)
            return conn.read_response()
        except (redis.ConnectionError, redis.TimeoutError):
            conn.disconnect()  # the next command connects again
            raise

    def _calls(self, *commands):
        """Several commands in one round trip, their answers."""
        conn = self._conn
        try:
            conn.send_packed_command(conn.pack_commands(commands))
            return [conn.read_response() for _ in commands]
        except (redis.ConnectionError, redis.TimeoutError):
            conn.disconnect()
            raise

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

    def _changes(self) -> Tuple[list, "_Changes"]:
        """What the commit must check and write: for each task this transaction touched,
        the difference between what it read (or nothing, for a new task) and what it
        leaves. A task written several times (submitted, then handed out at once) is
        written once."""
        p, read = self.prefix, self._read
        checks: list = []
        changes = _Changes()
        for task_id, new in self._overlay.items():
            old = read.get(task_id)
            if old is None and new is None:
                continue  # made and deleted within the transaction
            checks += [f"{p}versions", task_id, "" if old is None else str(old.version)]
            if old is not None:
                self._unindex(old, changes)
                changes.add("HINCRBY", f"{p}counts", old.status, -1)
            if new is None:
                changes.add("HDEL", f"{p}tasks", task_id)
                changes.add("HDEL", f"{p}versions", task_id)
                changes.add("ZREM", f"{p}all", task_id)
                if old.idempotency_key is not None:
                    changes.add("HDEL", f"{p}idem", old.idempotency_key)
                continue
            self._index(new, changes)
            changes.add("HINCRBY", f"{p}counts", new.status, 1)
            changes.add("HSET", f"{p}tasks", task_id, json_codec.dumps(list(new)))
            changes.add("HSET", f"{p}versions", task_id, str(new.version))
            if old is None or old.type != new.type:
                changes.add("SADD", f"{p}types", new.type)
            if old is None:
                changes.add("ZADD", f"{p}all", new.seq, task_id)
                if new.idempotency_key is not None:
                    checks += [f"{p}idem", new.idempotency_key, ""]
                    changes.add("HSET", f"{p}idem", new.idempotency_key, task_id)
        if self._last_seq is not None:
            changes.add("SET", f"{p}seq", self._last_seq)
        return checks, changes

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
        while not self._script("take_lock", [f"{self.prefix}lock"],
                               [token, int(self.lock_seconds * 1000)]):
            if time.monotonic() > deadline:
                raise StoreUnavailable(f"Redis at {self.url}: the queue stayed locked by "
                                       f"another server for {self.busy_seconds:g} s")
            time.sleep(pause)
            pause = min(pause * 2, 0.01)
        self._token = token
        self._last_seq = None

    def _end(self, commit: bool) -> None:
        try:
            if commit:
                checks, changes = self._changes()
        finally:
            token, self._token = self._token, ""
            overlay = self._overlay
            self._overlay, self._keys, self._deltas, self._undo = {}, {}, {}, []
            self._read, self._heads = {}, None
        if not commit:
            self._script("release", [f"{self.prefix}lock"], [token])
            return
        if not overlay:  # nothing written: only the lock to give back
            self._script("release", [f"{self.prefix}lock"], [token])
            return
        answer = self._script("commit", [f"{self.prefix}lock"],
                              [token, len(checks) // 3, *checks, *changes.words()])
        if answer == "lock lost":
            raise StoreUnavailable(f"Redis at {self.url}: this server held the lock longer "
                                   f"than {self.lock_seconds:g} s; nothing was saved")
        if answer != "ok":
            raise ConcurrentUpdate(f"task {answer.split(' ', 1)[1]} was changed by someone "
                                   "else; nothing was saved")

    def _write(self, task_id: str, task: Optional[Task],
               moves: Iterable[Tuple[str, int]] = ()) -> None:
        """Keep a write for the commit (``_changes``), and let this transaction read it."""
        self._undo.append(("overlay", task_id, self._overlay.get(task_id, _ABSENT)))
        self._overlay[task_id] = task
        for status, change in moves:
            self._undo.append(("count", status, change))
            self._deltas[status] = self._deltas.get(status, 0) + change

    def _mark(self) -> int:
        return len(self._undo)

    def _undo_to(self, undo: int) -> None:
        while len(self._undo) > undo:
            kind, key, value = self._undo.pop()
            if kind == "overlay":
                if value is _ABSENT:
                    self._overlay.pop(key, None)
                else:
                    self._overlay[key] = value
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
        deleted = 0
        for task in self._get_many(ids):
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
        if task_id in self._overlay:
            return self._overlay[task_id]
        if task_id in self._read:
            return self._read[task_id]
        task = self._task(self._call("HGET", f"{self.prefix}tasks", task_id))
        if self._depth:
            self._read[task_id] = task
        return task

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
        # A lease ending exactly now is still valid (see lifecycle.check_lease).
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
        p = self.prefix
        key = f"{p}all" if status is None else f"{p}status:{status}"
        low = "-inf" if after is None else f"({after}"
        found: List[Task] = []
        skipped, start = 0, 0
        chunk = max(limit + offset, 100) if type is not None else limit + offset
        while len(found) < limit:
            if newest_first:
                ids = self._call("ZREVRANGEBYSCORE", key, "+inf", low, "LIMIT", start, chunk)
            else:
                ids = self._call("ZRANGEBYSCORE", key, low, "+inf", "LIMIT", start, chunk)
            for task in self._get_many(ids):
                if task is None or (type is not None and task.type != type) \
                        or (status is not None and task.status != status):
                    continue
                if skipped < offset:
                    skipped += 1
                    continue
                found.append(task)
                if len(found) == limit:
                    break
            if len(ids) < chunk:
                break
            start += chunk
        return found

    @engine_errors
    def count_by_status(self) -> Dict[str, int]:
        answer = self._call("HGETALL", f"{self.prefix}counts")
        stored = dict(zip(answer[::2], answer[1::2]))
        return {status: int(stored.get(status, 0)) + self._deltas.get(status, 0)
                for status in STATUSES}

    def transaction_alive(self) -> bool:
        return self._depth == 0 or bool(self._token)

    def close(self) -> None:
        self._conn.disconnect()
        self._pool.disconnect()


_ABSENT = object()


class _Changes:
    """A commit's writes, gathered by command and key: one ZADD per sorted set with all
    its members, one HSET per hash... so the script makes few calls, whatever the batch.
    Removals are written before additions (a task leaving a set and coming back)."""

    ORDER = ("ZREM", "HDEL", "ZADD", "HSET", "SADD", "HINCRBY", "SET")

    def __init__(self):
        self._by = {}  # (command, key) -> its words after the key

    def add(self, command: str, key: str, *words) -> None:
        if command == "HINCRBY":  # one per field, the changes summed
            words = (words[0], int(self._by.pop((command, key, words[0]), [0, 0])[1])
                     + int(words[1]))
            self._by[(command, key, words[0])] = list(words)
            return
        self._by.setdefault((command, key), []).extend(words)

    def words(self) -> list:
        out = []
        for command in self.ORDER:
            for by, words in self._by.items():
                if by[0] == command and not (command == "HINCRBY" and words[1] == 0):
                    out += [2 + len(words), command, by[1], *map(str, words)]
        return out


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
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                store._lock.release()
                raise StoreUnavailable(f"Redis at {store.url}: {exc}") from exc
            except BaseException:
                store._lock.release()
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
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                raise StoreUnavailable(f"Redis at {store.url}: {exc}; whether the last "
                                       "commit was applied is unknown") from exc
        finally:
            store._lock.release()
        return False
