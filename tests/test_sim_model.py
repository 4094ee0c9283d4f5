"""The model's behaviour: conservation, crashes, seeds, priorities, scheduling, spikes."""

import numpy as np
import pandas as pd
import pytest

from queue_system import Backoff, lifecycle
from sim import Arrivals, Dist, Model, Producer, Scenario, TaskKind, mmc_scenario, preset, simulate


def small(name, **changes):
    return preset(name).replace(**changes)


def final_counts_agree_with_the_store(model, result):
    """The records and the queue's own store tell the same story."""
    store = model.store.count_by_status()
    s = result.summary
    assert s["created"] == s["completed"] + s["dead_letter"] + s["refused_total"] + s["in_system_at_end"]
    assert store["completed"] == s["completed"]
    assert store["failed"] == s["dead_letter"]
    assert store["pending"] + store["scheduled"] + store["processing"] == s["in_system_at_end"]
    # Refused tasks never reached the queue.
    assert sum(store.values()) + s["refused_total"] == s["created"]


@pytest.mark.parametrize("name", ["steady", "worker-crash", "overload", "scheduled", "priorities"])
def test_conservation(name):
    model = Model(small(name, duration=1200.0, warmup=0.0))
    result = model.run()
    final_counts_agree_with_the_store(model, result)
    tasks = result.tasks
    assert len(tasks) == result.summary["created"] > 0
    # Every finished task has a finish time, every task in the system has none.
    assert tasks.loc[tasks.status != "in_system", "finished"].notna().all()
    assert tasks.loc[tasks.status == "in_system", "finished"].isna().all()


def test_overload_refuses_beyond_capacity():
    model = Model(small("overload", duration=900.0))
    result = model.run()
    assert result.summary["refused_total"] > 0
    ts = result.timeseries
    assert (ts.queue_length + ts.scheduled).max() <= preset("overload").capacity
    final_counts_agree_with_the_store(model, result)


def test_crashes_lose_no_task_and_the_lease_brings_tasks_back():
    scenario = small("worker-crash", crash_rate=1 / 120, duration=None, max_tasks=2000,
                     failure_p=0.1)
    model = Model(scenario)
    result = model.run()  # runs until every task is completed or dead-lettered
    s = result.summary
    assert s["created"] == 2000 and s["in_system_at_end"] == 0
    assert s["completed"] + s["dead_letter"] == 2000
    final_counts_agree_with_the_store(model, result)
    attempts = result.attempts
    crashed = attempts[attempts.outcome == "crashed"]
    assert len(crashed) > 10
    # After a crash the task is tried again, but not before the lease has run out:
    # it was the queue's sweep, not the simulation, that gave it back.
    for _, crash in crashed.iterrows():
        later = attempts[(attempts.task == crash.task) & (attempts.start > crash.start)]
        if len(later):
            assert later.start.min() > crash.start + scenario.lease_seconds
        else:
            assert result.tasks.loc[crash.task, "status"] == "dead_letter"


def test_same_seed_same_rows_different_seed_different_rows():
    scenario = small("worker-crash", duration=900.0)
    a, b, c = simulate(scenario), simulate(scenario), simulate(scenario, seed=scenario.seed + 1)
    pd.testing.assert_frame_equal(a.tasks, b.tasks)
    pd.testing.assert_frame_equal(a.attempts, b.attempts)
    pd.testing.assert_frame_equal(a.timeseries, b.timeseries)
    # NaN (a figure with no data: no high-priority task here) is not equal to itself.
    assert pd.Series(a.summary).equals(pd.Series(b.summary))
    assert not a.tasks["created"].equals(c.tasks["created"])
    assert a.summary["mean_wait"] != c.summary["mean_wait"]


def test_priorities_under_load():
    result = simulate(preset("priorities"))
    tasks = result.tasks[result.tasks.created >= preset("priorities").warmup]
    waits = tasks.groupby("priority", observed=True)["wait"].mean()
    assert waits["high"] < waits["normal"] < waits["low"]


def test_no_task_starts_before_its_execute_at_and_none_is_late():
    result = simulate(preset("scheduled"))
    tasks = result.tasks
    scheduled = tasks[tasks.ready > tasks.created]
    assert len(scheduled) > 100
    started = tasks.dropna(subset=["first_start"])
    assert (started.first_start >= started.ready).all()


def test_idle_workers_wake_exactly_at_execute_at():
    # Three tasks scheduled 50 s ahead, nothing else: idle workers must start each at its
    # execute_at (woken by the queue's next_wakeup, not by a polling tick).
    scenario = Scenario(producers=(Producer("cron", Arrivals.recorded([0.0, 1.0, 2.5]),
                                            (TaskKind("job", service=Dist.fixed(1.0),
                                                      delay=Dist.fixed(50.0)),)),),
                        workers=2, duration=100.0)
    tasks = simulate(scenario).tasks
    assert list(tasks.created) == [0.0, 1.0, 2.5]
    assert np.allclose(tasks.first_start, [50.0, 51.0, 52.5])
    assert (tasks.status == "completed").all()


def test_spike_grows_the_queue_then_drains_it():
    result = simulate(preset("spike"))
    ts = result.timeseries.set_index("time")
    before = ts.loc[600:1200, "queue_length"].mean()
    early_spike = ts.loc[1200:1500, "queue_length"].mean()
    late_spike = ts.loc[1500:1800, "queue_length"].mean()
    at_end_of_spike = ts.loc[1750:1800, "queue_length"].mean()
    drained = ts.loc[2700:3600, "queue_length"].mean()
    assert before < 2
    assert late_spike > early_spike > before          # growing during the spike
    assert at_end_of_spike > 50
    assert drained < 2                                # and drained after it
    assert ts.loc[1800:2700, "queue_length"].idxmax() < 1900  # the peak is at the spike's end


def test_long_tasks_heartbeat_and_keep_their_lease():
    scenario = Scenario(producers=(Producer("p", Arrivals.recorded([0, 1, 2]),
                                            (TaskKind("long", service=Dist.fixed(100.0)),)),),
                        workers=3, lease_seconds=30.0, duration=200.0)
    result = simulate(scenario)
    assert (result.tasks.status == "completed").all()
    assert (result.tasks.attempts == 1).all()


def test_the_simulated_worker_renews_a_lease_every_third_of_it_as_the_live_one_does():
    """Both take the period from ``lifecycle.heartbeat_every``: with a 30 s lease, a 100 s
    task is renewed at 10, 20, ... 90 s after it starts, and never lets its lease run out."""
    scenario = Scenario(producers=(Producer("p", Arrivals.recorded([5.0]),
                                            (TaskKind("long", service=Dist.fixed(100.0)),)),),
                        workers=1, lease_seconds=30.0, duration=200.0)
    model = Model(scenario)
    renewals, heartbeat = [], model.queue.heartbeat

    def recorded_heartbeat(task_id, lease_id, lease_seconds=None):
        renewed = heartbeat(task_id, lease_id, lease_seconds)
        renewals.append((model.env.now, renewed.lease_expires_at))
        return renewed

    model.queue.heartbeat = recorded_heartbeat
    result = model.run()
    assert model.beat == lifecycle.heartbeat_every(30.0) == 10.0
    assert [now for now, _ in renewals] == pytest.approx([5.0 + 10 * k for k in range(1, 10)])
    assert all(expires == pytest.approx(now + 30.0) for now, expires in renewals)
    assert result.tasks.status.tolist() == ["completed"]


def test_backoff_delays_retries():
    scenario = Scenario(producers=(Producer("p", Arrivals.poisson(0.2),
                                            (TaskKind("t", service=Dist.fixed(1.0)),)),),
                        workers=4, failure_p=0.5, max_retries=4,
                        backoff=Backoff("fixed", 10.0), duration=2000.0)
    result = simulate(scenario)
    a = result.attempts.sort_values(["task", "start"])
    nxt = a.groupby("task")["start"].shift(-1)
    gaps = (nxt - a["end"]).dropna()
    assert len(gaps) > 50
    assert gaps.min() >= 10.0 - 1e-9
    assert (result.tasks.attempts <= 4).all()
    dead = result.tasks[result.tasks.status == "dead_letter"]
    assert len(dead) > 0 and (dead.attempts == 4).all()


def test_records_have_one_row_per_task_with_each_attempt():
    result = simulate(small("worker-crash", duration=900.0))
    tasks, attempts = result.tasks, result.attempts
    assert len(tasks) == result.summary["created"]
    assert tasks.attempts.sum() == len(attempts)
    k = int(tasks.attempts.max())
    assert k >= 2 and f"start_{k}" in tasks and f"end_{k}" in tasks
    retried = tasks[tasks.attempts >= 2].iloc[0]
    rows = attempts[attempts.task == retried.name].sort_values("start")
    assert retried.start_1 == rows.start.iloc[0] and retried.end_2 == rows.end.iloc[1]
    done = tasks[tasks.status == "completed"]
    assert np.allclose(done.time_in_system, done.finished - done.created)
    assert (done.wait >= -1e-9).all()


def test_littles_law_on_the_simulations_own_output():
    # L from the sampled time series (the store's counts), lam and W from the task records.
    scenario = mmc_scenario(2.4, 1.0, 3, duration=20000.0, warmup=1000.0, sample_every=0.25, seed=4)
    result = simulate(scenario)
    ts = result.timeseries
    window = ts[ts.time >= scenario.warmup]
    L = (window.queue_length + window.scheduled + window.in_progress).mean()
    tasks = result.tasks[(result.tasks.created >= scenario.warmup)]
    lam = len(tasks) / (result.end - scenario.warmup)
    W = tasks.time_in_system.dropna().mean()
    assert L == pytest.approx(lam * W, rel=0.03)
    # The same on the queue alone: Lq = lam Wq.
    Lq = (window.queue_length + window.scheduled).mean()
    assert Lq == pytest.approx(lam * tasks.wait.dropna().mean(), rel=0.05)


def test_a_crash_on_the_last_attempt_dead_letters_through_the_lease_and_the_run_ends():
    # max_retries=1: a crashed attempt is the task's only one, so the queue's sweep sends
    # it to the dead letter when the lease runs out. The run (until every task is done)
    # must see that and end, with every task accounted for.
    scenario = small("worker-crash", crash_rate=1 / 60, failure_p=0.0, max_retries=1,
                     duration=None, max_tasks=600)
    model = Model(scenario)
    result = model.run()
    final_counts_agree_with_the_store(model, result)
    tasks, attempts = result.tasks, result.attempts
    dead = tasks[tasks.status == "dead_letter"]
    assert len(dead) > 5 and result.summary["in_system_at_end"] == 0
    crashed = attempts[attempts.outcome == "crashed"].set_index("task")
    assert set(dead.index) == set(crashed.index)
    # Dead-lettered by the lease's end, not by the crash itself.
    assert (dead.finished > crashed.loc[dead.index, "start"] + scenario.lease_seconds).all()


def test_the_cycle_collector_is_paused_for_the_run_only():
    """The model pauses Python's cycle collector while it runs: on again after a run,
    after a run that raised, and left off if it was off."""
    import gc

    class Boom(Exception):
        pass

    assert gc.isenabled()
    seen = []
    model = Model(small("steady", duration=60.0, warmup=0.0))
    model.env.timeout(10).callbacks.append(lambda _: seen.append(gc.isenabled()))
    model.run()
    assert seen == [False] and gc.isenabled()

    failing = Model(small("steady", duration=60.0, warmup=0.0))
    failing.env.timeout(10).callbacks.append(lambda _: (_ for _ in ()).throw(Boom()))
    with pytest.raises(Boom):
        failing.run()
    assert gc.isenabled()

    gc.disable()
    try:
        Model(small("steady", duration=60.0, warmup=0.0)).run()
        assert not gc.isenabled()
    finally:
        gc.enable()


def _claim_sizes(scenario):
    model = Model(scenario)
    sizes, claim = [], model.queue.claim

    def spy(worker_id, types=None, lease_seconds=None, limit=1):
        sizes.append(limit)
        return claim(worker_id, types, lease_seconds, limit)
    model.queue.claim = spy
    return model.run(), sizes


def test_the_simulated_workers_claim_by_the_live_workers_prefetch_rule():
    """Tasks of 10 ms are claimed about 1 + 100/10 = 11 at a time, as a live worker with
    --prefetch auto would; the lesson's tasks of seconds, one at a time."""
    _, fast = _claim_sizes(mmc_scenario(60.0, 100.0, 1).replace(duration=60.0))
    assert max(fast) > 5 and max(fast) <= 100
    result, slow = _claim_sizes(preset("steady"))
    assert set(slow) == {1} and len(slow) > 100
    assert (result.tasks["status"] == "completed").sum() > 0


def test_long_tasks_claimed_with_short_ones_keep_their_leases():
    """The prefetch, sized by short tasks, may take a few long ones too: their leases are
    renewed while they wait, as the live worker's heartbeats do (this raised TaskConflict)."""
    from sim import Dist
    scenario = mmc_scenario(8.0, 1.0, 3, duration=600.0, lease_seconds=15.0, seed=3)
    kinds = [TaskKind(type="short", share=0.95, service=Dist.exponential(0.001)),
             TaskKind(type="long", share=0.05, service=Dist.fixed(7.0))]
    scenario = scenario.replace(producers=[Producer(arrivals=Arrivals.poisson(8.0), mix=kinds)])
    result = simulate(scenario)
    assert (result.tasks["status"] == "completed").sum() > 3000


def test_textbook_waits_are_offered_only_for_tasks_taken_one_at_a_time():
    from sim.compare import is_mmc
    assert is_mmc(mmc_scenario(2.4, 1.0, 3))
    assert not is_mmc(mmc_scenario(240.0, 100.0, 3))  # 10 ms tasks: workers claim several at once
