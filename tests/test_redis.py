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

from live import LiveSystem, wait_for
from queue_system.client import ApiError, QueueClient, ServerUnreachable
from redis_server import RedisServer, skip_without_redis

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
