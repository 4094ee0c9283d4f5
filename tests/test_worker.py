"""The worker's own logic, against a fake client (no server, no sockets)."""

import threading
import time

from queue_system import MemoryStore, TaskQueue, sequential_ids
from queue_system.worker import Worker


class LateAnswerClient:
    """Answers the first claim with a task, but only after the worker was told to stop:
    the answer was on its way when the stop came."""

    url = "fake://"

    def __init__(self, task, delay):
        self.task, self.delay = task, delay
        self.worker = None
        self.answered = False
        self.released = []

    def claim(self, worker_id, types=None, wait=0, lease_seconds=None, max_tasks=1):
        if self.answered:  # later polls: nothing
            time.sleep(wait)
            return []
        self.worker.stopping.wait()
        time.sleep(self.delay)
        self.answered = True
        return [self.task]

    def release(self, task_id, lease_id):
        self.released.append(task_id)

    def ack(self, acks):
        raise AssertionError("nothing should run once the worker is stopping")


def test_a_claim_answered_just_after_the_stop_is_given_back():
    queue = TaskQueue(MemoryStore(), make_id=sequential_ids())
    queue.submit("report", {})
    [task] = queue.claim("w")
    client = LateAnswerClient(task, delay=0.1)
    worker = Worker(client, "w", {None: lambda t: None}, poll_wait=30)
    client.worker = worker
    runner = threading.Thread(target=worker.run)
    runner.start()
    time.sleep(0.1)
    worker.stop()
    runner.join(timeout=5)
    assert not runner.is_alive()
    # Before run() returned, the late task went back to the server.
    assert client.released == [task.id]


def test_an_idle_worker_still_stops_promptly():
    class Idle:
        url = "fake://"

        def claim(self, *args, wait=0, **kwargs):
            time.sleep(wait)
            return []

    worker = Worker(Idle(), "w", {None: lambda t: None}, poll_wait=30)
    runner = threading.Thread(target=worker.run)
    runner.start()
    time.sleep(0.1)
    started = time.monotonic()
    worker.stop()
    runner.join(timeout=5)
    assert not runner.is_alive() and time.monotonic() - started < 1
