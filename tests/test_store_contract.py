"""The store contract: every rule of the queue, on every store.

Each test runs once per store (see ``conftest.store``). Time is moved with
the manual clock, never by sleeping.
"""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from queue_system import Backoff, TaskConflict, TaskNotFound, TaskQueue, lifecycle
from queue_system.errors import ConcurrentUpdate, InvalidTask
from queue_system.task import STATUSES, serving_order

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def claim_one(queue, worker="w1", **kwargs):
    tasks = queue.claim(worker, **kwargs)
    return tasks[0] if tasks else None


def test_submitted_task_is_pending_and_readable(queue, clock):
    task, created = queue.submit("email", {"to": "a@b.c"})
    assert created
    stored = queue.get(task.id)
    assert stored.status == "pending"
    assert stored.payload == {"to": "a@b.c"}
    assert stored.created_at == clock()
    assert stored.retries == 0 and stored.max_retries == 3


@pytest.mark.parametrize("payload", [{}, [], None, 0, "", [1, {"a": None}], "texte é"])
def test_any_json_value_is_a_payload(queue, payload):
    task, _ = queue.submit("report", payload)
    assert queue.get(task.id).payload == payload


def test_priority_order_then_fifo(queue):
    ids = {}
    for name, priority in [("n1", "normal"), ("l1", "low"), ("h1", "high"),
                           ("n2", "normal"), ("h2", "high"), ("l2", "low")]:
        ids[queue.submit("t", name, priority=priority)[0].id] = name
    order = [ids[claim_one(queue).id] for _ in range(6)]
    assert order == ["h1", "h2", "n1", "n2", "l1", "l2"]
    assert claim_one(queue) is None


def test_fifo_within_a_priority_over_time(queue, clock):
    submitted = []
    for i in range(20):
        submitted.append(queue.submit("t", i)[0].id)
        clock.advance(0.001)
    assert [t.id for t in queue.claim("w", limit=20)] == submitted


def test_claim_batch_returns_distinct_leases(queue):
    for i in range(5):
        queue.submit("t", i)
    tasks = queue.claim("w", limit=3)
    assert [t.payload for t in tasks] == [0, 1, 2]
    assert len({t.lease_id for t in tasks}) == 3
    assert all(t.status == "processing" and t.worker_id == "w" for t in tasks)
    assert [t.payload for t in queue.claim("w", limit=10)] == [3, 4]


def test_claim_only_some_types(queue):
    queue.submit("email", 1)
    queue.submit("image", 2, priority="high")
    queue.submit("report", 3)
    assert claim_one(queue, types=["email", "report"]).payload == 1
    assert claim_one(queue, types=["report"]).payload == 3
    assert claim_one(queue, types=["email"]) is None
    assert claim_one(queue).payload == 2


def test_execute_at_is_respected(queue, clock):
    later, _ = queue.submit("t", "later", execute_at=clock() + 60)
    assert queue.get(later.id).status == "scheduled"
    now_task, _ = queue.submit("t", "now")
    held = claim_one(queue)
    assert held.id == now_task.id
    queue.complete(held.id, held.lease_id)
    clock.advance(59.9)
    assert claim_one(queue) is None
    assert queue.next_wakeup() == pytest.approx(later.execute_at)
    clock.advance(0.1)
    assert queue.get(later.id).status == "scheduled"  # reading changes nothing...
    assert queue.sweep() == {"promoted": 1, "expired": 0}  # ...a sweep (or a claim) does
    assert queue.get(later.id).status == "pending"
    assert claim_one(queue).id == later.id


def test_delay_and_past_execute_at(queue, clock):
    delayed, _ = queue.submit("t", 1, delay=5)
    assert delayed.execute_at == clock() + 5
    past, _ = queue.submit("t", 2, execute_at=clock() - 100)
    assert past.status == "pending" and past.execute_at == clock()
    with pytest.raises(InvalidTask):
        queue.submit("t", 3, delay=5, execute_at=clock() + 5)
    with pytest.raises(InvalidTask):
        queue.submit("t", 3, delay=-1)


def test_a_high_priority_task_in_the_future_does_not_block_others(queue, clock):
    queue.submit("t", "future", priority="high", delay=100)
    queue.submit("t", "low now", priority="low")
    assert claim_one(queue).payload == "low now"


def test_complete_records_result(queue, clock):
    queue.submit("t", 1)
    task = claim_one(queue)
    clock.advance(2)
    done = queue.complete(task.id, task.lease_id, {"ok": True})
    assert done.status == "completed" and done.result == {"ok": True}
    assert done.finished_at == clock() and done.claimed_at == clock() - 2
    assert queue.get(task.id).result == {"ok": True}


def test_failure_retries_then_dead_letter(queue):
    task, _ = queue.submit("t", 1, max_retries=3)
    for attempt in range(1, 4):
        held = claim_one(queue)
        assert held.id == task.id and held.attempts == attempt
        after = queue.fail(held.id, held.lease_id, f"boom {attempt}")
        assert after.retries == attempt
    assert after.status == "failed" and after.error == "boom 3"
    assert claim_one(queue) is None
    assert [t.id for t in queue.dead_letter()] == [task.id]
    assert queue.stats()["failed"] == queue.stats()["dead_letter"] == 1


def test_max_retries_one_means_a_single_attempt(queue):
    queue.submit("t", 1, max_retries=1)
    held = claim_one(queue)
    assert queue.fail(held.id, held.lease_id, "x").status == "failed"


def test_replay_from_dead_letter_resets_retries(queue):
    task, _ = queue.submit("t", 1, max_retries=1)
    held = claim_one(queue)
    queue.fail(held.id, held.lease_id, "x")
    replayed = queue.replay(task.id)
    assert replayed.status == "pending" and replayed.retries == 0
    assert queue.dead_letter() == []
    assert claim_one(queue).id == task.id
    with pytest.raises(TaskConflict):
        queue.replay(task.id)


def test_fixed_backoff_delays_the_retry(make_queue, clock):
    queue = make_queue(backoff=Backoff("fixed", 10))
    queue.submit("t", 1)
    held = claim_one(queue)
    after = queue.fail(held.id, held.lease_id, "x")
    assert after.status == "scheduled" and after.execute_at == clock() + 10
    clock.advance(9.99)
    assert claim_one(queue) is None
    clock.advance(0.01)
    assert claim_one(queue).id == held.id


def test_exponential_backoff_grows_with_jitter_and_cap(make_queue, clock):
    queue = make_queue(backoff=Backoff("exponential", base=1, factor=2, max_delay=5, jitter=0.5))
    queue.submit("t", 1, max_retries=10)
    delays = []
    for _ in range(6):
        clock.advance(100)
        held = claim_one(queue)
        after = queue.fail(held.id, held.lease_id, "x")
        delays.append(after.execute_at - clock())
    ceilings = [1, 2, 4, 5, 5, 5]
    for delay, ceiling in zip(delays, ceilings):
        assert ceiling * 0.5 <= delay <= ceiling
    assert len(set(delays)) > 1


def test_lease_expiry_puts_task_back_and_counts_an_attempt(queue, clock):
    task, _ = queue.submit("t", 1)
    held = claim_one(queue, worker="dead")
    clock.advance(30)
    assert claim_one(queue, worker="other") is None  # exactly at expiry the lease still holds
    clock.advance(0.001)
    again = claim_one(queue, worker="other")
    assert again.id == task.id and again.retries == 1 and again.attempts == 2
    assert "dead" in again.error
    assert again.lease_id != held.lease_id


def test_an_expired_lease_is_retried_at_once_without_backoff(make_queue, clock):
    queue = make_queue(backoff=Backoff("fixed", 10))
    task, _ = queue.submit("t", 1)
    claim_one(queue, worker="dead")
    clock.advance(30.001)
    again = claim_one(queue, worker="other")  # the worker failed, not the task: no wait
    assert again.id == task.id and again.retries == 1


def test_expired_leases_end_in_dead_letter(queue, clock):
    task, _ = queue.submit("t", 1, max_retries=2)
    for _ in range(2):
        claim_one(queue)
        clock.advance(31)
    assert queue.get(task.id).status == "processing"  # until a sweep sees the lease ended
    assert queue.stats()["processing"] == 1
    queue.sweep()
    assert queue.get(task.id).status == "failed"


def test_due_answers_both_sweep_questions_at_once(queue, store, clock):
    """``store.due(now)`` is ``(due_scheduled(now), expired_leases(now))``, boundaries included."""
    def due(now):
        promoted, expired = store.due(now)
        return [t.id for t in promoted], [t.id for t in expired]

    assert due(clock()) == ([], [])
    held, _ = queue.submit("t", "held")
    later, _ = queue.submit("t", "later", delay=10)
    claim_one(queue)
    assert due(clock()) == ([], [])
    assert due(clock() + 10) == ([later.id], [])               # due at its execute_at
    assert due(clock() + 30) == ([later.id], [])               # a lease ending now still holds
    assert due(clock() + 30.5) == ([later.id], [held.id])
    assert due(clock() + 30.5) == (
        [t.id for t in store.due_scheduled(clock() + 30.5)],
        [t.id for t in store.expired_leases(clock() + 30.5)])


def test_heartbeat_extends_the_lease(queue, clock):
    queue.submit("t", 1)
    held = claim_one(queue)
    for _ in range(5):
        clock.advance(20)
        queue.heartbeat(held.id, held.lease_id)
    clock.advance(20)
    assert claim_one(queue, worker="other") is None
    assert queue.complete(held.id, held.lease_id, 1).status == "completed"


def test_stale_lease_changes_nothing(queue, clock):
    queue.submit("t", 1)
    slow = claim_one(queue, worker="slow")
    clock.advance(31)
    fast = claim_one(queue, worker="fast")
    for action in (lambda: queue.complete(slow.id, slow.lease_id, "late"),
                   lambda: queue.fail(slow.id, slow.lease_id, "late"),
                   lambda: queue.heartbeat(slow.id, slow.lease_id),
                   lambda: queue.release(slow.id, slow.lease_id)):
        with pytest.raises(TaskConflict):
            action()
    assert queue.get(slow.id) == fast
    assert queue.complete(fast.id, fast.lease_id, "ok").result == "ok"


def test_an_expired_lease_is_refused_even_before_a_sweep(queue, clock):
    queue.submit("t", 1)
    held = claim_one(queue)
    clock.advance(31)
    with pytest.raises(TaskConflict, match="expired"):
        queue.complete(held.id, held.lease_id, "late")


def test_actions_on_tasks_not_in_progress(queue):
    task, _ = queue.submit("t", 1)
    with pytest.raises(TaskConflict, match="not in progress"):
        queue.complete(task.id, None, 1)
    held = claim_one(queue)
    queue.complete(held.id, None, 1)  # None: act on the current lease, as the lesson's route
    with pytest.raises(TaskConflict):
        queue.fail(held.id, None, "again")
    with pytest.raises(TaskNotFound):
        queue.complete("no-such-task", None, 1)
    with pytest.raises(TaskNotFound):
        queue.get("no-such-task")


def test_release_gives_the_task_back_without_a_failure(queue):
    task, _ = queue.submit("t", 1)
    held = claim_one(queue)
    back = queue.release(held.id, held.lease_id)
    assert back.status == "pending" and back.retries == 0
    assert back.attempts == 0, "a claim given back unstarted is not an attempt"
    again = claim_one(queue)
    assert again.id == task.id and again.attempts == 1
    # Given back after its handler began (a forced stop): the attempt still counts.
    begun = queue.release(again.id, again.lease_id, started=True)
    assert begun.status == "pending" and begun.attempts == 1 and begun.retries == 0


def test_idempotency_key_deduplicates(queue):
    first, created = queue.submit("email", {"n": 1}, idempotency_key="order-42")
    again, created_again = queue.submit("email", {"n": 2}, idempotency_key="order-42")
    assert created and not created_again
    assert again.id == first.id and again.payload == {"n": 1}
    assert queue.stats()["total"] == 1
    other, created_other = queue.submit("email", {"n": 3}, idempotency_key="order-43")
    assert created_other and other.id != first.id


def test_stats_and_listing(queue, clock):
    for i in range(4):
        queue.submit("a" if i % 2 else "b", i)
    queue.submit("a", "later", delay=10)
    held = claim_one(queue)
    queue.complete(held.id, held.lease_id)
    claim_one(queue)
    stats = queue.stats()
    assert {k: stats[k] for k in ("pending", "scheduled", "processing", "completed", "failed")} == \
        {"pending": 2, "scheduled": 1, "processing": 1, "completed": 1, "failed": 0}
    assert stats["total"] == 5
    assert [t.payload for t in queue.list(type="a")] == [1, 3, "later"]
    assert [t.payload for t in queue.list(limit=2, offset=1)] == [1, 2]
    assert [t.payload for t in queue.list(status="completed")] == [0]
    with pytest.raises(InvalidTask):
        queue.list(status="done")


def test_store_refuses_a_write_based_on_a_stale_read(queue, store):
    task, _ = queue.submit("t", 1)
    read = store.get(task.id)
    store.update(read._replace(error="first", version=read.version + 1))
    with pytest.raises(ConcurrentUpdate):
        store.update(read._replace(error="second", version=read.version + 1))
    assert store.get(task.id).error == "first"


@pytest.mark.parametrize("bad", [
    dict(type=""), dict(type=" "), dict(type=5), dict(type="x" * 201), dict(priority="urgent"),
    dict(priority=["high"]), dict(priority=None),
    dict(max_retries=0), dict(max_retries="3"), dict(max_retries=True),
    dict(execute_at="tomorrow"), dict(execute_at=float("nan")), dict(idempotency_key=""),
])
def test_invalid_tasks_are_refused_and_nothing_is_stored(queue, bad):
    spec = dict(type="t", payload={})
    spec.update(bad)
    with pytest.raises(InvalidTask):
        queue.submit(spec.pop("type"), spec.pop("payload"), **spec)
    assert queue.stats()["total"] == 0


def test_invalid_claims(queue):
    with pytest.raises(InvalidTask):
        queue.claim("")
    for lease in (0, 1e-9, 0.5, float("nan"), float("inf"), 10 ** 9):
        with pytest.raises(InvalidTask):
            queue.claim("w", lease_seconds=lease)
    for limit in (0, 1001, True, 1.0, "1"):
        with pytest.raises(InvalidTask):
            queue.claim("w", limit=limit)


@pytest.mark.parametrize("text", ["fixed:nan", "fixed:inf", "exponential:1:nan", "exponential:inf",
                                  "sometimes", "fixed:-1"])
def test_backoff_policies_must_be_finite_and_known(text):
    with pytest.raises(ValueError):
        Backoff.parse(text)


# -- what the contract says of every engine (stores/base.py) ------------------------------


def test_the_store_gives_each_task_its_place_in_line_and_serves_by_it(queue, store, clock):
    submitted = []
    for n, priority in enumerate(["low", "normal", "high"] * 4):
        submitted.append(queue.submit("t", n, priority=priority)[0])
        if n % 5 == 4:
            clock.advance(1)  # some share a time, some do not
    seqs = [task.seq for task in submitted]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[0] > 0
    assert [store.get(task.id).seq for task in submitted] == seqs  # stored with the task
    expected = sorted(submitted, key=serving_order)
    served = queue.claim("w", limit=len(submitted))
    assert [task.id for task in served] == [task.id for task in expected]
    assert [task.seq for task in served] == [task.seq for task in expected]  # a claim keeps it
    done = queue.complete(served[0].id, served[0].lease_id)
    assert done.seq == expected[0].seq


def test_a_place_in_line_is_never_given_again_even_after_a_purge(queue):
    first, _ = queue.submit("t", 1)
    last, _ = queue.submit("t", 2)
    for task in queue.claim("w", limit=2):
        queue.complete(task.id, task.lease_id)
    assert queue.purge(0) == 2  # the newest tasks are gone...
    after, _ = queue.submit("t", 3)
    assert after.seq > last.seq  # ...and a reader paging after last.seq still finds this one
    assert [task.id for task in queue.list(after=last.seq)] == [after.id]


def test_the_counts_per_status_are_kept_as_tasks_change(queue, store, clock):
    def recount():
        counted = dict.fromkeys(STATUSES, 0)
        for task in store.list(limit=10_000):
            counted[task.status] += 1
        return counted
    for n in range(12):
        queue.submit("t", n, max_retries=1, delay=5 if n % 4 == 0 else None)
    held = queue.claim("w", limit=6)
    queue.complete(held[0].id, held[0].lease_id)
    queue.fail(held[1].id, held[1].lease_id, "dead")
    queue.release(held[2].id, held[2].lease_id)
    assert store.count_by_status() == recount()
    clock.advance(60)
    queue.sweep()  # the scheduled fall due, the leases run out (dead: one attempt each)
    assert store.count_by_status() == recount()
    finished = store.count_by_status()["failed"] + 1
    assert queue.purge(0) == finished
    counts = store.count_by_status()
    assert counts == recount() and counts["completed"] == counts["failed"] == 0
    assert queue.stats()["total"] == sum(counts.values()) == len(store.list(limit=10_000))


def test_lists_page_by_a_cursor_without_repeating_or_missing_a_task(queue):
    ids = [queue.submit("t" if n % 3 else "u", n)[0].id for n in range(25)]
    pages, after = [], None
    while True:
        page = queue.list(limit=4, after=after)
        if not page:
            break
        pages.append(page)
        after = page[-1].seq
    assert [task.id for page in pages for task in page] == ids
    assert all(len(page) == 4 for page in pages[:-1])
    of_type = queue.list(type="u", limit=3, after=queue.get(ids[3]).seq)
    assert [task.id for task in of_type] == [ids[6], ids[9], ids[12]]
    held = queue.claim("w", limit=5)
    assert [t.id for t in queue.list(status="processing", after=held[1].seq)] == \
        [t.id for t in held[2:]]


def test_a_nested_block_that_raises_is_undone_alone_where_the_store_offers_it(queue, store):
    if not store.undoes_nested_blocks:
        pytest.skip(f"{type(store).__name__} does not undo a block (undoes_nested_blocks is "
                    "False): the queue's rule that a refused step raises before it writes "
                    "is what keeps it whole; see test_lifecycle_properties")
    kept, _ = queue.submit("t", "kept")
    with store.transaction():
        first = store.insert(lifecycle.new_task("in-outer", "t", None, 0.0))
        with pytest.raises(RuntimeError):
            with store.transaction():
                store.insert(lifecycle.new_task("in-nested", "t", None, 0.0))
                task = store.get(kept.id)
                store.update(task._replace(error="nested", version=task.version + 1))
                raise RuntimeError("undo this block")
        assert store.get("in-nested") is None and store.get(kept.id).error is None
    assert store.get(first.id) is not None and store.get("in-nested") is None
    assert store.get(kept.id) == kept and store.count_by_status()["pending"] == 2
    with pytest.raises(RuntimeError):  # the outermost block is undone whole
        with store.transaction():
            store.insert(lifecycle.new_task("in-failed-outer", "t", None, 0.0))
            raise RuntimeError("undo it all")
    assert store.get("in-failed-outer") is None and store.count_by_status()["pending"] == 2


RACERS, TASKS = 4, 240


def test_claimers_racing_in_threads_never_share_a_task(store, clock):
    if not getattr(store, "threadsafe", True):
        pytest.skip("this memory store is made for one thread (the simulation's)")
    queue = TaskQueue(store, clock, lease_seconds=60)
    queue.submit_many([{"type": "t", "payload": n} for n in range(TASKS)])
    start, taken = threading.Barrier(RACERS), [[] for _ in range(RACERS)]

    def race(n):
        start.wait()
        while True:
            tasks = queue.claim(f"w{n}", limit=3)
            if not tasks:
                return
            taken[n] += [(task.id, task.lease_id) for task in tasks]
    threads = [threading.Thread(target=race, args=(n,)) for n in range(RACERS)]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns between any two steps, as on many cores
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        sys.setswitchinterval(switch)
    assert_each_task_held_once(store, taken)


RACER = """
import json, sys, time
from queue_system import TaskQueue, open_store
store = open_store(sys.argv[1])
queue = TaskQueue(store, lease_seconds=60)
while time.time() < float(sys.argv[3]):  # start together
    pass
taken = []
while True:
    tasks = queue.claim(sys.argv[2], limit=3)
    if not tasks:
        break
    taken += [(task.id, task.lease_id) for task in tasks]
    time.sleep(0.002)  # as if working: SQLite's busy wait lets a claimer in a tight loop win
print(json.dumps(taken))
"""


def test_claimers_racing_in_processes_never_share_a_task(store):
    if store.url.startswith("memory"):
        pytest.skip("a memory store lives in one process: no other process can claim from it")
    queue = TaskQueue(store, lease_seconds=60)
    queue.submit_many([{"type": "t", "payload": n} for n in range(TASKS)])
    start = time.time() + 1.5  # once every racer has imported and opened the store
    racers = [subprocess.Popen([sys.executable, "-c", RACER, store.url, f"p{n}", str(start)],
                               stdout=subprocess.PIPE, text=True, cwd=ROOT)
              for n in range(RACERS)]
    taken = [json.loads(racer.communicate(timeout=120)[0]) for racer in racers]
    assert all(racer.returncode == 0 for racer in racers)
    assert_each_task_held_once(store, taken)


def assert_each_task_held_once(store, taken):
    """Every task claimed once, by the racer whose lease the store holds."""
    held = [(task_id, lease_id) for each in taken for task_id, lease_id in each]
    assert len(held) == TASKS and len({task_id for task_id, _ in held}) == TASKS
    assert sum(1 for each in taken if each) > 1, "no race: one claimer took everything"
    for task_id, lease_id in held:
        assert store.get(task_id).lease_id == lease_id


def test_a_batch_of_thousands_in_one_transaction_is_committed_whole(queue, store):
    # As the server's group commit makes them: many requests, each a nested block.
    with store.transaction():
        for _ in range(5):
            with store.transaction():
                queue.submit_many([{"type": "t", "payload": n} for n in range(1000)])
    with store.transaction():
        held = []
        for _ in range(45):
            with store.transaction():
                held += queue.claim("w", limit=100)
    assert len(held) == 4500 and len({task.id for task in held}) == 4500
    counts = store.count_by_status()
    assert counts["pending"] == 500 and counts["processing"] == 4500
    assert len(queue.claim("w", limit=1000)) == 500  # the rest is still served


def test_reads_inside_a_transaction_see_its_own_writes(queue, store):
    queue.submit("t", "before")
    with store.transaction():
        new, _ = queue.submit("t", "new")
        [held] = queue.claim("w")
        assert [t.payload for t in store.list()] == ["before", "new"]
        assert [t.id for t in store.list(status="processing")] == [held.id]
        assert [t.payload for t in store.list(status="pending")] == ["new"]
        assert store.count_by_status()["processing"] == 1
        assert queue.get(new.id).status == "pending"
    assert [t.status for t in store.list()] == ["processing", "pending"]


def test_a_key_freed_by_a_purge_may_be_taken_in_the_same_transaction(queue, store, clock):
    old, _ = queue.submit("t", "old", idempotency_key="K")
    [held] = queue.claim("w")
    queue.complete(held.id, held.lease_id)
    with store.transaction():
        assert queue.purge(0) == 1
        new, created = queue.submit("t", "new", idempotency_key="K")
        assert created and new.id != old.id
    assert store.get(old.id) is None
    assert queue.submit("t", "again", idempotency_key="K") == (store.get(new.id), False)
    assert [t.id for t in queue.list()] == [new.id]


def test_servers_whose_clocks_differ_a_little_refuse_no_claim(store, clock):
    from queue_system import ManualClock
    ahead = TaskQueue(store, ManualClock(clock() + 0.01))
    behind = TaskQueue(store, clock)
    task, _ = ahead.submit("t", 1, priority="high")  # ready by the clock that stored it
    assert behind.claim("w") == []  # not yet by ours: it waits, nothing is refused
    mine, _ = behind.submit("t", 2)
    assert [t.id for t in behind.claim("w")] == [mine.id]  # the tasks after it are served
    clock.advance(0.01)
    assert [t.id for t in behind.claim("w")] == [task.id]


def test_an_offset_skips_that_many_of_the_tasks_listed(queue, store):
    ids = [queue.submit("t" if n % 2 else "u", n)[0].id for n in range(12)]
    queue.claim("w", limit=3)
    everything = [task.id for task in store.list(limit=100)]
    assert everything == ids
    assert [t.id for t in store.list(limit=4, offset=5)] == ids[5:9]
    pending = [t.id for t in store.list(status="pending", limit=100)]
    assert [t.id for t in store.list(status="pending", limit=2, offset=3)] == pending[3:5]
    of_type = [t.id for t in store.list(type="u", limit=100)]
    assert [t.id for t in store.list(type="u", limit=2, offset=1)] == of_type[1:3]
    assert [t.id for t in store.list(limit=3, offset=2, newest_first=True)] == \
        ids[::-1][2:5]
    with store.transaction():  # and as a transaction that wrote sees it
        new, _ = queue.submit("t", "new")
        assert [t.id for t in store.list(limit=3, offset=11)] == [ids[11], new.id]
