"""The hand-off: work made by a batch goes to the workers waiting for it, in that
batch's own commit, first parked first served (no HTTP: the store thread alone)."""

import asyncio
import threading

import pytest
from sqlite_faults import next_commit_fails

from queue_system import MemoryStore, SQLiteStore, TaskQueue
from queue_system.errors import StoreUnavailable
from queue_system.localhost import wait_for
from queue_system.server.group_commit import GroupCommitter
from queue_system.server.long_poll import WaitingClaims, wait_for_work


@pytest.fixture(params=["sqlite", "memory"])
def parts(request, tmp_path):
    store = SQLiteStore(str(tmp_path / "q.db")) if request.param == "sqlite" else MemoryStore()
    queue = TaskQueue(store)
    waiting = WaitingClaims(queue)
    committer = GroupCommitter(store, on_work=waiting.serve)
    yield queue, waiting, committer
    committer.close()


def submit(committer, queue, type="x", makes_work=True):
    task, _ = committer.submit(queue.submit, type, {}, makes_work=makes_work).result(timeout=10)
    return task


def test_a_submit_is_handed_to_the_worker_waiting_in_the_same_commit(parts):
    queue, waiting, committer = parts
    waiter = waiting.park("w1", None, 60, 1)
    task = submit(committer, queue)
    handed, = waiter.future.result(timeout=10)
    assert handed.id == task.id and handed.worker_id == "w1"
    stored = queue.get(task.id)
    assert stored.status == "processing" and stored.lease_id == handed.lease_id
    assert stored.lease_expires_at == pytest.approx(stored.claimed_at + 60)
    assert not waiting.leave(waiter)  # already answered: nothing to take back


def test_work_that_says_nothing_of_itself_is_not_handed_out(parts):
    queue, waiting, committer = parts
    waiter = waiting.park("w1", None, None, 1)
    task = submit(committer, queue, makes_work=False)
    assert queue.get(task.id).status == "pending" and not waiter.future.done()
    assert waiting.leave(waiter)  # still waiting: it leaves with nothing


def test_first_parked_first_served_and_each_by_its_types(parts):
    queue, waiting, committer = parts
    emails = waiting.park("w-email", ["email"], None, 1)
    first = waiting.park("w-any-1", None, None, 1)
    second = waiting.park("w-any-2", None, None, 1)
    report = submit(committer, queue, "report")
    assert first.future.result(timeout=10)[0].id == report.id
    assert not emails.future.done() and not second.future.done()
    email = submit(committer, queue, "email")
    assert emails.future.result(timeout=10)[0].id == email.id
    assert not second.future.done()
    assert waiting.leave(second)


def test_a_worker_that_left_is_handed_nothing(parts):
    queue, waiting, committer = parts
    waiter = waiting.park("w1", None, None, 1)
    assert waiting.leave(waiter)
    task = submit(committer, queue)
    assert queue.get(task.id).status == "pending" and not waiter.future.done()


def test_a_batch_is_shared_among_the_waiting_within_their_limits(parts):
    queue, waiting, committer = parts
    waiters = [waiting.park(f"w{n}", None, None, 2) for n in range(3)]
    committer.submit(queue.submit_many, [{"type": "x"} for _ in range(5)],
                     makes_work=True).result(timeout=10)
    counts = [len(w.future.result(timeout=10)) for w in waiters]
    assert counts == [2, 2, 1]
    assert queue.stats()["processing"] == 5


def test_a_commit_that_fails_hands_out_nothing_and_the_worker_is_told(tmp_path):
    store = SQLiteStore(str(tmp_path / "q.db"))
    queue = TaskQueue(store)
    waiting = WaitingClaims(queue)
    committer = GroupCommitter(store, on_work=waiting.serve)
    try:
        waiter = waiting.park("w1", None, None, 1)
        # The submit fits; the batch's commit then fails (a full disk), after the
        # hand-off claimed the task for the waiting worker.
        with next_commit_fails(store):
            future = committer.submit(queue.submit, "x", {}, makes_work=True)
            with pytest.raises(StoreUnavailable):
                future.result(timeout=10)
            with pytest.raises(StoreUnavailable):
                waiter.future.result(timeout=10)  # told: its claim was undone with the rest
    finally:
        committer.close()
    assert queue.list() == []  # nothing half done: no task, so none held by w1


class GatedClaims:
    """Holds the store thread inside the queue's claim until ``gate`` opens."""

    def __init__(self, queue):
        self.inside, self.gate = threading.Event(), threading.Event()
        self._claim = queue.claim
        queue.claim = self

    def __call__(self, *args):
        self.inside.set()
        assert self.gate.wait(10)
        return self._claim(*args)


@pytest.mark.parametrize("work", [True, False], ids=["found", "none"])
def test_a_worker_leaving_while_served_gets_what_its_claim_found(parts, work):
    queue, waiting, committer = parts
    waiter = waiting.park("w1", ["email"], None, 1)
    gated = GatedClaims(queue)
    # An "email" is handed out; a "report" (not its type) leaves it with nothing.
    future = committer.submit(queue.submit, "email" if work else "report", {},
                              makes_work=True)
    assert gated.inside.wait(10)
    assert not waiting.leave(waiter)  # being served: its future will say
    gated.gate.set()
    task, _ = future.result(timeout=10)
    handed = waiter.future.result(timeout=10)  # answered either way: none hangs
    assert [t.id for t in handed] == ([task.id] if work else [])
    assert queue.get(task.id).status == ("processing" if work else "pending")
    assert waiting.serve([]) is None and not waiting._waiters  # it is gone for good


def test_a_store_that_gives_up_while_serving_tells_every_waiter(tmp_path):
    store = SQLiteStore(str(tmp_path / "q.db"))
    queue = TaskQueue(store)
    waiting = WaitingClaims(queue)
    committer = GroupCommitter(store, on_work=waiting.serve)
    first, second = waiting.park("w1", None, None, 1), waiting.park("w2", None, None, 1)
    claim = queue.claim

    def claim_then_lose_the_transaction(worker_id, *args):
        if worker_id == "w2":  # the first waiter was served, then the store gives up
            store._db.execute("ROLLBACK")
            raise StoreUnavailable("disk I/O error")
        return claim(worker_id, *args)
    queue.claim = claim_then_lose_the_transaction
    try:
        future = committer.submit(queue.submit_many, [{"type": "x"}, {"type": "x"}],
                                  makes_work=True)
        with pytest.raises(StoreUnavailable):
            future.result(timeout=10)
        for waiter in (first, second):  # both told, neither left hanging nor parked
            with pytest.raises(StoreUnavailable):
                waiter.future.result(timeout=10)
        assert not waiting._waiters
    finally:
        committer.close()
    assert queue.list() == []


def test_a_cancelled_wait_gives_back_what_was_claimed_for_it(parts):
    queue, waiting, committer = parts
    given_back = []

    def give_back(tasks):
        for task in tasks:
            given_back.append(committer.submit(queue.release, task.id, task.lease_id))

    async def scenario():
        waiter = waiting.park("w1", None, None, 1)
        gated = GatedClaims(queue)
        poll = asyncio.ensure_future(
            wait_for_work(waiting, waiter, asyncio.Event(), 30, give_back))
        future = committer.submit(queue.submit, "x", {}, makes_work=True)
        while not gated.inside.is_set():
            await asyncio.sleep(0.001)
        poll.cancel()  # the server stops while the store thread claims for this poll
        with pytest.raises(asyncio.CancelledError):
            await poll
        gated.gate.set()
        task, _ = await asyncio.wrap_future(future)
        return task
    task = asyncio.run(scenario())
    # The give-back runs when the store thread answers the poll's future: maybe just after.
    wait_for(lambda: given_back, 10, "the claim to be given back")
    for release in list(given_back):
        release.result(timeout=10)
    assert len(given_back) == 1
    stored = queue.get(task.id)
    assert stored.status == "pending" and stored.lease_id is None and stored.attempts == 0
