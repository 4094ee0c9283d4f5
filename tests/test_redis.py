"""Several API servers, one queue: the Redis store with real processes.

The store contract's own tests run on Redis too (``conftest.store``); here,
what only a shared engine shows: two servers and three workers draining one
queue, and Redis itself killed and restarted from its append-only file.
Each test starts its own ``redis-server`` on a free loopback port
(``redis_server.py``), skipped without one except under CI.
"""

import signal
import threading

import pytest

from live import LiveSystem, free_port, wait_for
from queue_system import TaskQueue
from queue_system.client import ApiError, QueueClient, ServerUnreachable
from queue_system.errors import ConcurrentUpdate, StoreUnavailable
from redis_server import RedisServer, skip_without_redis

redis = pytest.importorskip("redis")
from queue_system.stores.redis import RedisStore, redact  # noqa: E402

FAST = ["--min-work", "0", "--max-work", "0.01"]


@pytest.fixture
def redis_alone(tmp_path):
    skip_without_redis()
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


def test_two_servers_and_three_workers_share_one_queue_and_lose_nothing(tmp_path, redis_alone):
    with LiveSystem(tmp_path / "a", store=redis_alone.url) as a, \
            LiveSystem(tmp_path / "b", store=redis_alone.url) as b:
        a.start_server("--backoff", "none")
        b.start_server("--backoff", "none")
        assert a.client.health()["store"] == b.client.health()["store"] == redis_alone.url
        workers = [a.start_worker("worker-1", *FAST, "--failure-rate", "0.2", "--seed", "1"),
                   a.start_worker("worker-2", *FAST, "--failure-rate", "0.2", "--seed", "2"),
                   b.start_worker("worker-3", *FAST, "--failure-rate", "0.2", "--seed", "3")]
        total = 300
        submitted = []
        for n in range(0, total, 50):  # producers on both servers, the tasks on one queue
            client = a.client if n % 100 == 0 else b.client
            submitted += client.submit_many({"type": ["email", "image", "report"][i % 3],
                                             "payload": {"n": i}} for i in range(n, n + 50))

        def finished():
            stats = b.client.stats()
            return stats if stats["completed"] + stats["failed"] == total else None
        stats = wait_for(finished, 120, f"{total} tasks to finish")
        assert a.client.stats() == stats  # one queue, whichever server is asked
        tasks = {task.id: task for task in a.client.all_tasks()}
        assert set(tasks) == {task.id for task in submitted}  # none lost
        assert sum(task.retries for task in tasks.values()) > 0  # failures did happen
        for task in tasks.values():
            # Never handed out twice under a valid lease: every run is one attempt, and
            # each attempt but the last failed (no lease ran out here).
            if task.status == "completed":
                assert task.attempts == task.retries + 1 and task.result, task
            else:
                assert task.status == "failed" and task.attempts == task.retries == 3, task
        assert {task.worker_id for task in tasks.values()} == {"worker-1", "worker-2",
                                                               "worker-3"}
        for system, name in ((a, "worker-1"), (a, "worker-2"), (b, "worker-3")):
            log = system.log(name)
            assert "refused" not in log and "could not" not in log, log[-2000:]
        for system, worker in ((a, workers[0]), (a, workers[1]), (b, workers[2])):
            assert system.kill(worker, signal.SIGTERM) == 0


def test_redis_killed_and_restarted_keeps_every_task_that_got_a_202(tmp_path, redis_alone):
    with LiveSystem(tmp_path / "server", store=redis_alone.url) as live:
        live.start_server()
        client = QueueClient(live.url, timeout=5)
        accepted, refused, stop = [], [], threading.Event()

        def produce():
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    accepted.append(client.submit("email", {"n": n}).id)
                except (ApiError, ServerUnreachable) as error:
                    refused.append(error)
        producer = threading.Thread(target=produce)
        producer.start()
        try:
            wait_for(lambda: len(accepted) >= 200, 60, "200 tasks accepted")
            redis_alone.kill()  # SIGKILL: Redis writes nothing more
            wait_for(lambda: refused, 30, "a submit refused while Redis is down")
            redis_alone.start()  # the same folder and port: it reads its append-only file
            count = len(accepted)
            wait_for(lambda: len(accepted) > count + 20, 60, "submits accepted again")
        finally:
            stop.set()
            producer.join(30)
        assert all(isinstance(error, ApiError) and error.status == 503 for error in refused), \
            refused[:3]
        stored = {task.id for task in client.all_tasks()}
        assert set(accepted) <= stored  # every 202 survived the kill
        assert client.stats()["total"] == len(stored)


@pytest.fixture
def redis_store(redis_server):
    redis_server.flush()
    store = RedisStore(redis_server.url, busy_seconds=2)
    yield store
    store.close()


def test_a_commit_refused_gives_the_lock_back_at_once(redis_store, redis_server):
    queue = TaskQueue(redis_store)
    task, _ = queue.submit("t", 1)
    other = RedisStore(redis_server.url, busy_seconds=2)
    try:
        with pytest.raises(ConcurrentUpdate):
            with redis_store.transaction():
                queue.claim("w")
                # Behind the store's back (as a bug elsewhere would): its version changes.
                with redis.Redis.from_url(redis_server.url) as raw:
                    raw.hset("queue:versions", task.id, 99)
        # Another server is not locked out for the lock's 30 s: it works at once.
        assert TaskQueue(other).submit("t", 2)[1]
    finally:
        other.close()


def test_a_task_the_store_cannot_write_is_refused_alone(redis_store):
    queue = TaskQueue(redis_store)
    with redis_store.transaction():
        kept, _ = queue.submit("t", "kept")
        with pytest.raises(TypeError):
            with redis_store.transaction():
                queue.submit("t", {"not JSON": {1, 2}})  # a set: JSON has none
    assert [task.id for task in queue.list()] == [kept.id]
    assert redis_store.count_by_status()["pending"] == 1


def test_a_redis_that_cannot_answer_is_store_unavailable(redis_store, redis_server):
    with pytest.raises(StoreUnavailable, match="Redis at redis://127.0.0.1"):
        RedisStore(f"redis://127.0.0.1:{free_port()}/0", busy_seconds=1)  # nobody there
    queue = TaskQueue(redis_store)
    queue.submit("t", 1)
    redis_server.kill()
    try:
        with pytest.raises(StoreUnavailable):
            queue.submit("t", 2)
        with pytest.raises(StoreUnavailable):
            queue.stats()
    finally:
        redis_server.start()  # the session's server, back with its append-only file
    assert queue.stats()["total"] == 1  # the store connects again by itself


def test_the_password_never_shows():
    assert redact("redis://:s3cret@db.example:6380/2") == "redis://db.example:6380/2"
    assert redact("redis://user:s3cret@db.example/0") == "redis://db.example/0"
    assert redact("redis://db.example:6379/0") == "redis://db.example:6379/0"


def test_lists_agree_with_the_memory_store_inside_and_outside_a_transaction(redis_store):
    """Every way to list, on both stores built by the same steps, with tasks this very
    transaction wrote (made, claimed, finished) among those Redis passes over."""
    import random

    from queue_system import Backoff, ManualClock, MemoryStore, sequential_ids
    rng = random.Random(7)
    stores = {"memory": MemoryStore(), "redis": redis_store}
    queues = {name: TaskQueue(store, ManualClock(1000.0), backoff=Backoff("none"),
                              make_id=sequential_ids(), make_lease_id=sequential_ids("l"))
              for name, store in stores.items()}

    def both(step):
        return [step(queue) for queue in queues.values()]
    for n in range(300):
        both(lambda q: q.submit("t" if n % 3 else "u", n, priority=("high", "low")[n % 2]))
    both(lambda q: [q.complete(t.id, t.lease_id) for t in q.claim("w", limit=120)[::2]])

    def lists(inside):
        for _ in range(60):
            ask = dict(status=rng.choice([None, "pending", "processing", "completed"]),
                       type=rng.choice([None, None, "u"]), limit=rng.choice([1, 7, 50]),
                       offset=rng.choice([0, 3, 40, 150, 290]),
                       after=rng.choice([None, None, 20, 200]),
                       newest_first=rng.random() < 0.4)
            memory, on_redis = ([t.id for t in store.list(**ask)] for store in stores.values())
            assert memory == on_redis, (inside, ask)
    lists(inside=False)
    with stores["memory"].transaction(), stores["redis"].transaction():
        both(lambda q: [q.submit("t", f"new {n}") for n in range(5)])
        both(lambda q: [q.complete(t.id, t.lease_id) for t in q.claim("w", limit=8)[::3]])
        lists(inside=True)


def test_a_connection_broken_inside_a_transaction_gives_the_lock_back(redis_store,
                                                                       redis_server):
    queue = TaskQueue(redis_store)
    queue.submit("t", 1)
    with pytest.raises(StoreUnavailable, match="connection was lost"):
        with redis_store.transaction():
            queue.claim("w")
            with redis.Redis.from_url(redis_server.url) as raw:  # as a network blip
                raw.client_kill_filter(skipme=True)
            with pytest.raises(StoreUnavailable):
                queue.claim("w")
            # The group commit asks, and gives the batch up: what it read may be stale.
            assert not redis_store.transaction_alive()
    # The lock was given back at once: another server is not kept out for 30 s (it would
    # give up after 2 s), and the claim was not kept.
    other = RedisStore(redis_server.url, busy_seconds=2)
    try:
        with other.transaction():
            assert TaskQueue(other).stats()["pending"] == 1
    finally:
        other.close()
