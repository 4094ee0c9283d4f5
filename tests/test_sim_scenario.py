"""Scenarios, distributions and arrival processes: reading, writing, drawing."""

import json
import random

import pytest

from queue_system import Backoff
from sim import Arrivals, Dist, PRESETS, Producer, Scenario, TaskKind, preset


def test_required_presets_exist():
    assert {"steady", "spike", "worker-crash", "priorities", "scheduled"} <= set(PRESETS)
    for name, scenario in PRESETS.items():
        assert scenario.name == name and scenario.description


@pytest.mark.parametrize("name", ["steady", "spike", "worker-crash", "priorities", "scheduled"])
def test_presets_round_trip_through_json(name):
    scenario = preset(name)
    again = Scenario.from_json(json.dumps(json.loads(scenario.to_json())))
    assert again == scenario


def test_from_dict_overrides_a_preset():
    s = Scenario.from_dict({"preset": "spike", "workers": 7, "seed": 3,
                            "backoff": "fixed:2", "failure_p": 0.1})
    assert s.workers == 7 and s.seed == 3 and s.failure_p == 0.1
    assert s.backoff == Backoff("fixed", 2.0)
    assert s.producers == preset("spike").producers


def test_from_dict_builds_producers_and_mix():
    s = Scenario.from_dict({
        "producers": [{"name": "api", "arrivals": {"piecewise": [[0, 1], [60, 3]]},
                       "mix": [{"type": "a", "priority": "high", "share": 1,
                                "service": {"uniform": [1, 3]}},
                               {"type": "b", "service": {"exponential": 2}, "delay": 30}]}],
        "workers": 2, "duration": 120})
    (p,) = s.producers
    assert p.arrivals == Arrivals.piecewise([(0, 1), (60, 3)])
    assert p.mix[0] == TaskKind("a", "high", 1.0, Dist.uniform(1, 3))
    assert p.mix[1].delay == Dist.fixed(30) and p.mix[1].service.mean == 2


@pytest.mark.parametrize("bad,named", [
    ({"wrokers": 3}, "wrokers"), ({"workers": 0}, "workers"), ({"failure_p": 1.5}, "failure_p"),
    ({"warmup": 5000, "duration": 100}, "warmup"),
    ({"producers": [{"arrivals": {"poisson": -1}}]}, "poisson"),
    ({"producers": [{"mix": [{"priority": "urgent"}]}]}, "priority"),
    ({"workers": "3"}, "workers"), ({"workers": 2.5}, "workers"), ({"workers": 10_001}, "workers"),
    ({"capacity": True}, "capacity"), ({"duration": float("inf")}, "duration"),
    ({"duration": None, "max_tasks": 0}, "max_tasks"), ({"warmup": float("nan")}, "warmup"),
    ({"crash_rate": -1}, "crash_rate"), ({"restart_delay": "30"}, "restart_delay"),
    ({"lease_seconds": 0}, "lease_seconds"), ({"max_retries": 1.5}, "max_retries"),
    ({"sample_every": 0}, "sample_every"), ({"sample_every": 1e-9}, "sample_every"),
    ({"producers": []}, "producer"), ({"producers": [{"mix": []}]}, "empty task mix"),
    ({"producers": [{"name": 3}]}, "name"),
    ({"producers": [{"arrivals": {"piecewise": [[10, 1], [5, 2]]}}]}, "increase"),
    ({"producers": [{"arrivals": {"piecewise": []}}]}, "segment"),
    ({"producers": [{"arrivals": {"recorded": [2.0, 1.0]}}]}, "increasing"),
    ({"producers": [{"arrivals": {"recorded": [1, float("inf")]}}]}, "recorded"),
    ({"producers": [{"arrivals": {"replay": [1.0, 2.0]}}]}, "now called"),
    ({"producers": [{"mix": [{"service": {"uniform": [3, 1]}}]}]}, "uniform"),
    ({"producers": [{"mix": [{"service": {"exponential": 0}}]}]}, "exponential"),
    ({"producers": [{"mix": [{"delay": {"fixed": -1}}]}]}, "fixed"),
    ({"producers": [{"mix": [{"service": {"fixed": True}}]}]}, "fixed"),
])
def test_bad_scenarios_are_refused_naming_the_field(bad, named):
    # A ValueError (which the command line reports in one line), never a TypeError.
    with pytest.raises(ValueError, match=named):
        Scenario.from_dict(bad)


def test_nested_refusals_say_where():
    with pytest.raises(ValueError, match=r"producers\[1\]: mix\[0\]: unknown field\(s\) .*: colour"):
        Scenario.from_dict({"producers": [{}, {"mix": [{"colour": "red"}]}]})
    with pytest.raises(ValueError, match=r"backoff: unknown field\(s\) .*: bogus"):
        Scenario.from_dict({"backoff": {"kind": "fixed", "bogus": 1}})


def test_python_constructors_refuse_strings_and_bools_float_would_accept():
    for make in (lambda: Arrivals.poisson("2"), lambda: Arrivals.recorded([True]),
                 lambda: Dist.exponential("2"), lambda: Dist.uniform(1, "3"),
                 lambda: Arrivals.function(lambda t: 1.0, float("inf")),
                 lambda: Scenario(workers=True)):
        with pytest.raises(ValueError):
            make()


def test_a_run_without_a_duration_has_a_rate_only_if_it_is_constant():
    steady = Scenario(duration=None, max_tasks=100, producers=(Producer(arrivals=Arrivals.poisson(2.5)),))
    assert steady.arrival_rate() == 2.5
    spiky = steady.replace(producers=(Producer(arrivals=Arrivals.piecewise([(0, 1), (60, 3)])),))
    with pytest.raises(ValueError, match="without a duration"):
        spiky.arrival_rate()


def test_thinning_stops_when_the_rate_is_zero_for_good():
    # Once the last segment's rate is zero no proposal is ever kept: the generator must
    # end rather than loop forever between two arrivals.
    arrivals = Arrivals.piecewise([(0, 2.0), (50, 0.0)])
    times = list(arrivals.times_from(random.Random(3)))
    assert times and max(times) < 50
    # And a horizon ends the thinning of a rate function that is zero from then on.
    quiet = Arrivals.function(lambda t: 1.0 if t < 20 else 0.0, max_rate=1.0)
    assert max(quiet.times_from(random.Random(3), until=100.0)) < 20


def test_distributions_means_and_ranges():
    rng = random.Random(5)
    draw = Dist.uniform(1, 3).sampler(rng)
    values = [draw() for _ in range(20000)]
    assert min(values) >= 1 and max(values) <= 3
    assert sum(values) / len(values) == pytest.approx(2.0, abs=0.02)
    draw = Dist.exponential(2.0).sampler(rng)
    values = [draw() for _ in range(40000)]
    assert sum(values) / len(values) == pytest.approx(2.0, rel=0.03)
    assert Dist.fixed(4).sampler(rng)() == 4
    assert Dist.uniform(1, 3).scv == pytest.approx((2 ** 2 / 12) / 4)
    with pytest.raises(ValueError):
        Dist.from_dict({"gamma": 2})


def count_in(times, lo, hi):
    return sum(1 for t in times if lo <= t < hi)


def test_piecewise_thinning_gives_each_segment_its_rate():
    arrivals = Arrivals.piecewise([(0, 1.0), (1000, 4.0), (2000, 0.5)])
    times = []
    for t in arrivals.times_from(random.Random(11)):
        if t >= 4000:
            break
        times.append(t)
    # Poisson counts: mean = rate * length, sd = sqrt(mean); allow 4 sd.
    for lo, hi, rate in [(0, 1000, 1.0), (1000, 2000, 4.0), (2000, 4000, 0.5)]:
        mean = rate * (hi - lo)
        assert abs(count_in(times, lo, hi) - mean) < 4 * mean ** 0.5
    assert arrivals.mean_rate(0, 2000) == pytest.approx(2.5)
    assert arrivals.busy_windows() == [(1000, 2000)]


def test_function_rate_by_thinning():
    arrivals = Arrivals.function(lambda t: 3.0 if 500 <= t < 1000 else 1.0, max_rate=3.0)
    times = []
    for t in arrivals.times_from(random.Random(2)):
        if t >= 1500:
            break
        times.append(t)
    assert abs(count_in(times, 500, 1000) - 1500) < 4 * 1500 ** 0.5
    assert abs(count_in(times, 0, 500) - 500) < 4 * 500 ** 0.5


def test_recorded_arrivals_give_back_the_times():
    arrivals = Arrivals.recorded([0.5, 1.0, 7.25])
    assert list(arrivals.times_from(random.Random(1))) == [0.5, 1.0, 7.25]
    with pytest.raises(ValueError):
        Arrivals.recorded([2.0, 1.0])


def test_kinds_and_rates():
    s = Scenario(producers=(Producer("a", Arrivals.poisson(2.0), (TaskKind("x", share=3, service=Dist.fixed(1)),
                                                                   TaskKind("y", share=1, service=Dist.fixed(5)))),
                            Producer("b", Arrivals.poisson(1.0), (TaskKind("z", service=Dist.fixed(2)),))))
    assert [k.type for k in s.kinds()] == ["x", "y", "z"]
    assert s.arrival_rate() == pytest.approx(3.0)
    # (2 * 0.75 * 1 + 2 * 0.25 * 5 + 1 * 2) / 3
    assert s.mean_service() == pytest.approx((1.5 + 2.5 + 2) / 3)
