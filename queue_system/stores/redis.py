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

# Apply a transaction's writes, all or none: KEYS[1] the lock, ARGV[1] its token,
# ARGV[2] the checks [[key, field, expected]] (expected false: the field must not
# exist), ARGV[3] the commands [[name, args...]].
COMMIT = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 'lock lost'
end
for _, check in ipairs(cjson.decode(ARGV[2])) do
    local found = redis.call('HGET', check[1], check[2])
    if check[3] == false then
        if found then return 'taken ' .. check[2] end
    elseif tonumber(found) ~= check[3] then
        return 'changed ' .. check[2]
    end
end
for _, command in ipairs(cjson.decode(ARGV[3])) do
    redis.call(unpack(command))
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

# The first ``limit`` pending tasks of some types (all if none given) in serving order:
# the heads of every (type, rank) set merged by (rank, execute_at, seq). Returns ids.
NEXT_PENDING = """
local prefix, limit = ARGV[1], tonumber(ARGV[2])
local types = {}
if #ARGV > 2 then
    for i = 3, #ARGV do types[#types + 1] = ARGV[i] end
else
    types = redis.call('SMEMBERS', prefix .. 'types')
end
local found = {}
for _, type in ipairs(types) do
    for rank = 0, 2 do
        local head = redis.call('ZRANGE', prefix .. 'pending:' .. type .. ':' .. rank,
                                0, limit - 1, 'WITHSCORES')
        for i = 1, #head, 2 do
            found[#found + 1] = {rank, tonumber(head[i + 1]), head[i]}
        end
    end
end
table.sort(found, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    if a[2] ~= b[2] then return a[2] < b[2] end
    return a[3] < b[3]
end)
local ids = {}
for i = 1, math.min(limit, #found) do
    ids[i] = string.sub(found[i][3], %d)
end
return ids
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
            self._redis = redis.Redis.from_url(url, decode_responses=True,
                                               socket_timeout=busy_seconds + 5)
        except ValueError as exc:
            raise ValueError(f"{self.url!r} is not a Redis URL: {exc}") from None
        self._take_lock = self._redis.register_script(TAKE_LOCK)
        self._commit = self._redis.register_script(COMMIT)
        self._release = self._redis.register_script(RELEASE_LOCK)
        self._next_pending = self._redis.register_script(NEXT_PENDING)
        self._lock = threading.RLock()  # held by a thread through its whole transaction
        self._depth = 0
        self._token = ""
        self._writes: list = []    # [(checks, commands)] of the open transaction
        self._overlay: dict = {}   # id -> the task as this transaction wrote it (None: deleted)
        self._keys: dict = {}      # idempotency key -> id, written by this transaction
        self._deltas: dict = {}    # status -> change of its count in this transaction
        self._undo: list = []      # how to take back the overlay, keys and deltas
        self._last_seq: Optional[int] = None
        self.durability = self._durability()

    @engine_errors
    def _durability(self) -> str:
        """What a commit's answer means on this server; a warning if not durable."""
        try:
            config = self._redis.config_get("append*")
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

    def _index(self, task: Task) -> list:
        """The commands that put ``task`` in the indexes of its status."""
        p, status = self.prefix, task.status
        commands = [["ZADD", f"{p}status:{status}", task.seq, task.id]]
        if status == "pending":
            commands.append(["ZADD", self._pending_key(task), task.execute_at, self._member(task)])
        elif status == "scheduled":
            commands.append(["ZADD", f"{p}scheduled", task.execute_at, task.id])
        elif status == "processing":
            commands.append(["ZADD", f"{p}leases", task.lease_expires_at, task.id])
        else:
            commands.append(["ZADD", f"{p}finished", task.finished_at, task.id])
        return commands

    def _unindex(self, task: Task) -> list:
        """The commands that take ``task`` (as stored) out of the indexes of its status."""
        p, status = self.prefix, task.status
        commands = [["ZREM", f"{p}status:{status}", task.id]]
        if status == "pending":
            commands.append(["ZREM", self._pending_key(task), self._member(task)])
        elif status == "scheduled":
            commands.append(["ZREM", f"{p}scheduled", task.id])
        elif status == "processing":
            commands.append(["ZREM", f"{p}leases", task.id])
        else:
            commands.append(["ZREM", f"{p}finished", task.id])
        return commands

    def _record(self, task: Task) -> list:
        p = self.prefix
        return [["HSET", f"{p}tasks", task.id, json_codec.dumps(list(task))],
                ["HSET", f"{p}versions", task.id, task.version]]

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
        while not self._take_lock(keys=[f"{self.prefix}lock"],
                                  args=[token, int(self.lock_seconds * 1000)]):
            if time.monotonic() > deadline:
                raise StoreUnavailable(f"Redis at {self.url}: the queue stayed locked by "
                                       f"another server for {self.busy_seconds:g} s")
            time.sleep(pause)
            pause = min(pause * 2, 0.01)
        self._token = token
        self._last_seq = None

    def _end(self, commit: bool) -> None:
        writes, self._writes = self._writes, []
        self._overlay, self._keys, self._deltas, self._undo = {}, {}, {}, []
        token, self._token = self._token, ""
        if not commit:
            self._release(keys=[f"{self.prefix}lock"], args=[token])
            return
        checks = [check for step in writes for check in step[0]]
        # Every argument as text: Lua would write a number with 14 digits only, and a
        # time such as 1764700000.123456 would lose its last ones.
        commands = [[str(arg) for arg in command] for step in writes for command in step[1]]
        if self._last_seq is not None:
            commands.append(["SET", f"{self.prefix}seq", str(self._last_seq)])
        answer = self._commit(keys=[f"{self.prefix}lock"],
                              args=[token, json_codec.dumps(checks), json_codec.dumps(commands)])
        if answer == "lock lost":
            raise StoreUnavailable(f"Redis at {self.url}: this server held the lock longer "
                                   f"than {self.lock_seconds:g} s; nothing was saved")
        if answer != "ok":
            raise ConcurrentUpdate(f"task {answer.split(' ', 1)[1]} was changed by someone "
                                   "else; nothing was saved")

    def _write(self, checks: list, commands: list, task_id: str, task: Optional[Task],
               moves: Iterable[Tuple[str, int]] = ()) -> None:
        """Keep a write for the commit, and let this transaction read it back."""
        self._writes.append((checks, commands))
        self._undo.append(("overlay", task_id, self._overlay.get(task_id, _ABSENT)))
        self._overlay[task_id] = task
        for status, change in moves:
            self._undo.append(("count", status, change))
            self._deltas[status] = self._deltas.get(status, 0) + change

    def _mark(self) -> Tuple[int, int]:
        return len(self._writes), len(self._undo)

    def _undo_to(self, mark: Tuple[int, int]) -> None:
        writes, undo = mark
        del self._writes[writes:]
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
            self._last_seq = int(self._redis.get(f"{p}seq") or 0)
        self._undo.append(("seq", None, self._last_seq))
        self._last_seq += 1
        task = task._replace(seq=self._last_seq)
        checks = [[f"{p}versions", task.id, False]]
        commands = self._record(task) + self._index(task) + [
            ["ZADD", f"{p}all", task.seq, task.id],
            ["SADD", f"{p}types", task.type],
            ["HINCRBY", f"{p}counts", task.status, 1]]
        if key is not None:
            checks.append([f"{p}idem", key, False])
            commands.append(["HSET", f"{p}idem", key, task.id])
            self._undo.append(("key", key, None))
            self._keys[key] = task.id
        self._write(checks, commands, task.id, task, [(task.status, 1)])
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
        p = self.prefix
        # Checked at the commit against what Redis holds: the version read from it, unless
        # this transaction wrote the task already (that write carries the check).
        checks = [] if task.id in self._overlay else [[f"{p}versions", task.id, old.version]]
        commands = self._unindex(old) + self._record(task) + self._index(task)
        moves = []
        if old.status != task.status:
            commands += [["HINCRBY", f"{p}counts", old.status, -1],
                         ["HINCRBY", f"{p}counts", task.status, 1]]
            moves = [(old.status, -1), (task.status, 1)]
        if old.idempotency_key != task.idempotency_key:
            raise ConcurrentUpdate(f"task {task.id}: an idempotency key does not change")
        if old.type != task.type:
            commands.append(["SADD", f"{p}types", task.type])
        self._write(checks, commands, task.id, task, moves)

    @engine_errors
    def delete_finished(self, before: float, limit: int = 1000) -> int:
        if self._depth == 0:
            return self._in_transaction(self.delete_finished, before, limit)
        p = self.prefix
        ids = self._redis.zrangebyscore(f"{p}finished", "-inf", before, start=0, num=limit)
        deleted = 0
        for task in self._get_many(ids):
            if task is None or task.status not in FINISHED or task.finished_at > before:
                continue  # changed by this very transaction
            commands = self._unindex(task) + [
                ["HDEL", f"{p}tasks", task.id], ["HDEL", f"{p}versions", task.id],
                ["ZREM", f"{p}all", task.id], ["HINCRBY", f"{p}counts", task.status, -1]]
            if task.idempotency_key is not None:
                commands.append(["HDEL", f"{p}idem", task.idempotency_key])
            checks = [] if task.id in self._overlay else [[f"{p}versions", task.id,
                                                           task.version]]
            self._write(checks, commands, task.id, None, [(task.status, -1)])
            deleted += 1
        return deleted

    # -- reads --------------------------------------------------------------------------

    def _get_many(self, ids: List[str]) -> List[Optional[Task]]:
        """The tasks with these ids, as this transaction sees them."""
        overlay = self._overlay
        missing = [task_id for task_id in ids if task_id not in overlay]
        stored = dict(zip(missing, self._redis.hmget(f"{self.prefix}tasks", missing))) \
            if missing else {}
        return [overlay[task_id] if task_id in overlay else self._task(stored[task_id])
                for task_id in ids]

    @engine_errors
    def get(self, task_id: str) -> Optional[Task]:
        if task_id in self._overlay:
            return self._overlay[task_id]
        return self._task(self._redis.hget(f"{self.prefix}tasks", task_id))

    @engine_errors
    def get_by_idempotency_key(self, key: str) -> Optional[Task]:
        task_id = self._keys.get(key) or self._redis.hget(f"{self.prefix}idem", key)
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
        # Tasks this transaction changed may still sit in the indexes: ask for that many more.
        ask = limit + len(self._overlay)
        ids = self._next_pending(args=[self.prefix, ask, *(types or ())])
        found = {task.id: task for task in self._get_many(ids)
                 if task is not None and task.status == "pending"}
        for task in self._written("pending"):
            if types is None or task.type in types:
                found[task.id] = task
        return sorted(found.values(), key=serving_order)[:limit]

    def _until(self, key: str, now: float, limit: int, strict: bool, status: str,
               when) -> List[Task]:
        bound = f"({now}" if strict else now
        ids = self._redis.zrangebyscore(key, "-inf", bound, start=0,
                                        num=limit + len(self._overlay))
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
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrange(f"{p}scheduled", 0, 0, withscores=True)
            pipe.zrange(f"{p}leases", 0, 0, withscores=True)
            heads = pipe.execute()
        times = [head[0][1] for head in heads if head]
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
                ids = self._redis.zrevrangebyscore(key, "+inf", low, start=start, num=chunk)
            else:
                ids = self._redis.zrangebyscore(key, low, "+inf", start=start, num=chunk)
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
        stored = self._redis.hgetall(f"{self.prefix}counts")
        return {status: int(stored.get(status, 0)) + self._deltas.get(status, 0)
                for status in STATUSES}

    def transaction_alive(self) -> bool:
        return self._depth == 0 or bool(self._token)

    def close(self) -> None:
        self._redis.close()


_ABSENT = object()


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
