"""The summary's figures on a run small enough to work out by hand.

One worker, end of the run at t = 10 s, no warm-up. The tasks (high, low and
normal priority) and their attempts:

    task 0 high    created 0,   attempt 0-1 completed
    task 1 low     created 0.5, attempt 1-2 failed, attempt 4-5 completed
    task 2 low     created 2,   attempt 2-3 failed, attempt 3.5-4 failed: dead letter at 4
    task 3 high    created 6,   refused (the queue was full)
    task 4 high    created 8,   never started: still waiting at the end
    task 5 normal  created 9,   scheduled for t = 12: not due before the end
"""

import math

import pytest

from sim import Producer, Scenario, TaskKind
from sim import records as R
from sim.summary import FIGURES, summarise

KINDS = (TaskKind("payment", "high"), TaskKind("report", "low"), TaskKind("email", "normal"))
SCENARIO = Scenario(producers=(Producer("p", mix=KINDS),), workers=1, duration=10.0)


@pytest.fixture(scope="module")
def summary():
    rec = R.Recorder()
    for kind, created, ready, finished, status in [
            (0, 0.0, 0.0, 1.0, R.COMPLETED), (1, 0.5, 0.5, 5.0, R.COMPLETED),
            (1, 2.0, 2.0, 4.0, R.DEAD), (0, 6.0, 6.0, 6.0, R.REFUSED),
            (0, 8.0, 8.0, R.NAN, R.IN_SYSTEM), (2, 9.0, 12.0, R.NAN, R.IN_SYSTEM)]:
        rec.task(kind, created, ready, finished, status)
    # Task 2's first attempt starts a rounding error after it was due: no wait.
    for task, start, end, outcome in [(0, 0.0, 1.0, R.OK), (1, 1.0, 2.0, R.FAILED),
                                      (2, 2.0 + 1e-13, 3.0, R.FAILED), (2, 3.5, 4.0, R.FAILED),
                                      (1, 4.0, 5.0, R.OK)]:
        rec.attempt(task, 0, start, end, outcome)
    attempts = rec.attempts_frame()
    return summarise(SCENARIO, rec.tasks_frame(KINDS, attempts), attempts, 10.0)


def test_every_figure_is_there(summary):
    assert set(FIGURES) <= set(summary)


def test_rates(summary):
    assert summary["arrival_rate"] == pytest.approx(6 / 10)    # refused and waiting ones too
    assert summary["throughput"] == pytest.approx(2 / 10)      # tasks 0 and 1
    assert summary["departure_rate"] == pytest.approx(3 / 10)  # and the dead-lettered task 2
    assert summary["attempt_rate"] == pytest.approx(5 / 10)


def test_probability_of_waiting(summary):
    # Asked: tasks 0, 1, 2 and 4 (3 was refused, 5 was not due). Task 1 waited 0.5 s,
    # task 4 was still waiting; 0 started at once, 2 a rounding error late.
    assert summary["p_wait"] == pytest.approx(2 / 4)


def test_waits_per_priority_and_per_attempt(summary):
    # Whole waits of the tasks that ended: 0 (task 0), 5 - 0.5 - 2 = 2.5 (task 1),
    # 4 - 2 - 1.5 = 0.5 (task 2).
    assert summary["mean_wait"] == pytest.approx(3.0 / 3)
    assert summary["mean_wait_high"] == pytest.approx(0.0)
    assert summary["mean_wait_low"] == pytest.approx((2.5 + 0.5) / 2)
    assert math.isnan(summary["mean_wait_normal"])  # task 5 never ended
    assert summary["mean_first_wait"] == pytest.approx((0 + 0.5 + 0) / 3)
    # Before task 1's retry: 4 - 2 = 2 s; before task 2's: 3.5 - 3 = 0.5 s.
    assert summary["mean_retry_wait"] == pytest.approx((2 + 0.5) / 2)


def test_little_s_quantities(summary):
    assert summary["mean_time_in_system"] == pytest.approx((1 + 4.5 + 2) / 3)
    # Task-seconds inside [0, 10]: 1 + 4.5 + 2 + 0 + 2 + 1.
    assert summary["mean_in_system"] == pytest.approx(10.5 / 10)
    assert summary["mean_attempts"] == pytest.approx(5 / 3)
    assert summary["dead_letter_fraction"] == pytest.approx(1 / 3)
    assert summary["refused_fraction"] == pytest.approx(1 / 6)
