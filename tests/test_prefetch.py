"""The worker's prefetch: at most a budget of unstarted work, by the tasks' mean duration."""

import pytest

from queue_system.worker.prefetch import Prefetch


@pytest.mark.parametrize("seconds, size", [
    (0.0, 100), (0.0005, 100), (0.001, 100), (0.03, 4), (0.06, 2), (0.1001, 1), (2.0, 1)])
def test_the_claim_holds_at_most_the_budget_of_unstarted_work(seconds, size):
    prefetch = Prefetch()
    for _ in range(50):
        prefetch.observe(seconds)
    assert prefetch.size() == size
    # The last task claimed waits for the others: at most the budget.
    assert (size - 1) * seconds <= prefetch.budget


def test_before_any_task_one_at_a_time_and_it_follows_a_change_of_workload():
    prefetch = Prefetch()
    assert prefetch.size() == 1
    for _ in range(30):
        prefetch.observe(0.001)
    assert prefetch.size() == 100
    for _ in range(30):  # the tasks got long (the lesson's reports)
        prefetch.observe(2.0)
    assert prefetch.size() == 1


def test_a_fixed_prefetch_is_used_as_is():
    prefetch = Prefetch(10)
    prefetch.observe(5.0)
    assert prefetch.size() == 10
    with pytest.raises(ValueError):
        Prefetch(0)
