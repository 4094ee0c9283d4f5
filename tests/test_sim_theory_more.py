"""Pollaczek-Khinchine, Erlang C's P(wait > 0), Cobham's priorities, retries and Little's
law: the formulas against values worked out by hand, then the simulation against them.

The simulation checks ask that the textbook value lies inside the 95% interval over 10
seeded replications, and that a plausible wrong answer (the M/M/1 wait for fixed
service, FIFO waits for priorities, the arrival rate for the attempt rate) lies outside:
an interval wide enough to hold everything would prove nothing. Seeds are fixed, so the
outcome is deterministic.
"""

import math

import pytest

from queue_system.backoff import Backoff
from sim import Arrivals, Dist, Producer, Scenario, TaskKind
from sim import theory as T
from sim.compare import predictions
from sim.replications import replicate

REPLICATIONS = 10
SEED = 300


def queue(lam, service, c=1, mix=(("normal", 1.0),), tasks=20000, **changes):
    """Poisson arrivals at ``lam`` on ``c`` workers, each priority's share of the tasks
    taking ``service`` (a Dist); about ``tasks`` tasks a run, a tenth of it warm-up."""
    duration = tasks / lam
    kinds = tuple(TaskKind(f"task-{p}", p, share, service) for p, share in mix)
    return Scenario(name="test", producers=(Producer("p", Arrivals.poisson(lam), kinds),),
                    workers=c, lease_seconds=3600.0, duration=duration, warmup=duration / 10,
                    seed=SEED, **changes)


def interval(scenario, figure):
    return replicate(scenario, REPLICATIONS, processes=2).ci().loc[figure]


def inside(value, row):
    return row["low"] <= value <= row["high"]


# -- the formulas, by hand ----------------------------------------------------------------

def test_pollaczek_khinchine_by_hand():
    # M/D/1, lam = 0.8, S = 1 s: Wq = 0.8 * 1 / (2 * 0.2) = 2 s, half of M/M/1's 4 s.
    assert T.md1(0.8, 1.0)["Wq"] == pytest.approx(2.0)
    assert T.mm1(0.8, 1.0)["Wq"] == pytest.approx(4.0)
    assert T.md1(0.8, 1.0)["P_wait"] == pytest.approx(0.8)
    # Uniform 1-3 s (the lesson's tasks), lam = 0.4: E[S] = 2, Var = 4/12, E[S^2] = 13/3,
    # rho = 0.8, Wq = 0.4 * 13/3 / 0.4 = 13/3 s.
    m = T.mg1(0.4, 2.0, 4 + 4 / 12)
    assert m["Wq"] == pytest.approx(13 / 3)
    assert m["W"] == pytest.approx(13 / 3 + 2)
    assert m["Lq"] == pytest.approx(0.4 * 13 / 3)
    # Exponential service: E[S^2] = 2 E[S]^2, and P-K is M/M/1.
    for lam in (0.3, 0.7, 0.9):
        assert T.mg1(lam, 1.0, 2.0)["Wq"] == pytest.approx(T.mm1(lam, 1.0)["Wq"])
    with pytest.raises(ValueError):
        T.md1(1.0, 1.0)
    with pytest.raises(ValueError):
        T.mg1(0.5, 1.0, 0.5)  # a second moment below the mean squared is impossible


def test_cobham_by_hand():
    # M/M/1, two classes of 0.4/s each, mu = 1: W0 = rho / mu = 0.8;
    # high: 0.8 / (1 * 0.6) = 4/3 s; low: 0.8 / (0.6 * 0.2) = 20/3 s.
    assert T.priority_mmc([0.4, 0.4], 1.0, 1) == pytest.approx([4 / 3, 20 / 3])
    # The same queue as M/G/1 (exponential: E[S^2] = 2).
    assert T.priority_mg1([0.4, 0.4], [1, 1], [2, 2]) == pytest.approx([4 / 3, 20 / 3])
    # M/M/3 at 80%: W0 = C(3, 2.4) / 3 = 0.6472 / 3; classes 0.48, 1.2, 0.72 per second
    # give sigma = 0.16, 0.56, 0.8.
    w0 = 0.647191 / 3
    expected = [w0 / (1 * 0.84), w0 / (0.84 * 0.44), w0 / (0.44 * 0.2)]
    assert T.priority_mmc([0.48, 1.2, 0.72], 1.0, 3) == pytest.approx(expected, rel=1e-5)


def test_cobham_keeps_the_mean_wait_of_equal_services():
    # Priorities reorder waits; with equal services the rate-weighted mean is FIFO's.
    lams = [0.48, 1.2, 0.72]
    waits = T.priority_mmc(lams, 1.0, 3)
    assert sum(l * w for l, w in zip(lams, waits)) / 2.4 == pytest.approx(T.mmc(2.4, 1.0, 3)["Wq"])
    # One class: Erlang C's wait, and P-K's.
    assert T.priority_mmc([2.4], 1.0, 3) == pytest.approx([T.mmc(2.4, 1.0, 3)["Wq"]])
    assert T.priority_mg1([0.4], [2.0], [13 / 3]) == pytest.approx([13 / 3])
    with pytest.raises(ValueError):
        T.priority_mmc([0.5, 0.6], 1.0, 1)


# -- which formula applies to which scenario ----------------------------------------------

def test_a_formula_is_offered_only_where_it_applies():
    exp, uni = Dist.exponential(1.0), Dist.uniform(1.0, 3.0)
    # M/G/1: P-K and P(wait > 0) = rho for any service.
    m = predictions(queue(0.4, uni))
    assert m["p_wait"] == pytest.approx(0.8) and m["mean_wait"] == pytest.approx(13 / 3)
    # M/G/3: no exact wait formula.
    m = predictions(queue(1.2, uni, c=3))
    assert not {"p_wait", "mean_wait", "mean_wait_normal"} & set(m)
    assert m["utilisation"] == pytest.approx(0.8)
    # M/M/3 with priorities: Erlang C for P(wait) and the mean, Cobham per class.
    m = predictions(queue(2.4, exp, c=3, mix=(("high", 0.2), ("normal", 0.5), ("low", 0.3))))
    assert m["p_wait"] == pytest.approx(0.6472, abs=1e-4)
    assert [m[f"mean_wait_{p}"] for p in ("high", "normal", "low")] == \
        pytest.approx(T.priority_mmc([0.48, 1.2, 0.72], 1.0, 3))
    # Two exponential means on three workers: no formula for the waits.
    kinds = (TaskKind("a", "high", 0.5, Dist.exponential(0.5)), TaskKind("b", "low", 0.5, exp))
    two = queue(2.0, exp, c=3).replace(producers=(Producer("p", Arrivals.poisson(2.0), kinds),))
    assert "mean_wait" not in predictions(two) and "mean_wait_high" not in predictions(two)
    # ... but on one worker Cobham's M/G/1 formula takes the classes' own moments.
    one = two.replace(workers=1, producers=(Producer("p", Arrivals.poisson(0.8), kinds),))
    lams, means = [0.4, 0.4], [0.5, 1.0]
    expected = T.priority_mg1(lams, means, [2 * 0.25, 2 * 1.0])
    m = predictions(one)
    assert [m["mean_wait_high"], m["mean_wait_low"]] == pytest.approx(expected)
    assert m["mean_wait"] == pytest.approx(sum(expected) / 2) and m["p_wait"] == pytest.approx(0.6)
    # Failures: no waits (retries are not Poisson), but the attempt rate and the rest.
    m = predictions(queue(1.5, exp, c=3, failure_p=0.3, max_retries=3))
    assert "mean_wait" not in m and "p_wait" not in m
    assert m["attempt_rate"] == pytest.approx(1.5 * (1 - 0.3 ** 3) / 0.7)
    assert m["departure_rate"] == pytest.approx(1.5)
    assert m["throughput"] == pytest.approx(1.5 * (1 - 0.3 ** 3))
    # Crashes cost attempts nobody counts: no attempt rate, no dead-letter fraction.
    m = predictions(queue(1.5, exp, c=3, crash_rate=0.001))
    assert not {"attempt_rate", "dead_letter_fraction", "mean_wait"} & set(m)
    # Scheduled tasks (execute_at) and a capacity: no waits.
    delayed = queue(0.5, exp).replace(producers=(Producer("p", Arrivals.poisson(0.5), (
        TaskKind("t", "normal", 1.0, exp, Dist.uniform(1, 5)),)),))
    assert "mean_wait" not in predictions(delayed)
    assert "mean_wait" not in predictions(queue(0.5, exp, capacity=10))


# -- the simulation against each formula --------------------------------------------------

def test_md1_waits_as_pollaczek_khinchine_says():
    row = interval(queue(0.8, Dist.fixed(1.0)), "mean_wait")
    assert inside(T.md1(0.8, 1.0)["Wq"], row), row.to_dict()
    assert not inside(T.mm1(0.8, 1.0)["Wq"], row)  # exponential service would wait twice as long


def test_mg1_with_the_lessons_task_times():
    row = interval(queue(0.4, Dist.uniform(1.0, 3.0), tasks=15000), "mean_wait")
    assert inside(13 / 3, row), row.to_dict()
    assert not inside(T.mm1(0.4, 0.5)["Wq"], row)  # 8 s: M/M/1 with the same mean


def test_mm1_waits_with_probability_rho():
    reps = replicate(queue(0.7, Dist.exponential(1.0), tasks=10000), REPLICATIONS, processes=2)
    row = reps.ci().loc["p_wait"]
    assert inside(0.7, row), row.to_dict()
    assert row["high"] - row["low"] < 0.03


@pytest.mark.parametrize("lam", [1.5, 2.4])
def test_mm3_waits_with_the_erlang_c_probability(lam):
    reps = replicate(queue(lam, Dist.exponential(1.0), c=3, tasks=15000), REPLICATIONS,
                     processes=2)
    row = reps.ci().loc["p_wait"]
    assert inside(T.erlang_c(3, lam), row), row.to_dict()
    assert not inside(lam / 3, row)  # the utilisation is not the chance to wait when c > 1


@pytest.mark.parametrize("c,mix", [
    (1, (("high", 0.5), ("low", 0.5))),
    (3, (("high", 0.2), ("normal", 0.5), ("low", 0.3))),
])
def test_priority_waits_follow_cobham(c, mix):
    lam = 0.8 * c  # 80% load, 1 s exponential service
    reps = replicate(queue(lam, Dist.exponential(1.0), c=c, mix=mix, tasks=20000),
                     REPLICATIONS, processes=2)
    ci = reps.ci()
    expected = T.priority_mmc([lam * share for _, share in mix], 1.0, c)
    fifo = T.mmc(lam, 1.0, c)["Wq"]
    for (name, _), wait in zip(mix, expected):
        row = ci.loc[f"mean_wait_{name}"]
        assert inside(wait, row), (name, wait, row.to_dict())
        assert not inside(fifo, row), name  # the order does change who waits
    assert math.isnan(ci.loc["mean_wait_normal", "mean"]) == (c == 1)


def test_the_attempt_rate_with_retries():
    lam, p, k = 1.5, 0.3, 3
    ci = replicate(queue(lam, Dist.exponential(1.0), c=3, tasks=15000, failure_p=p, max_retries=k),
                   REPLICATIONS, processes=2).ci()
    expected = lam * (1 + p + p ** 2)  # attempts 1, 2 and 3 are made with probability 1, p, p^2
    assert inside(expected, ci.loc["attempt_rate"]), ci.loc["attempt_rate"].to_dict()
    assert not inside(lam, ci.loc["attempt_rate"])
    assert inside(lam, ci.loc["departure_rate"]), ci.loc["departure_rate"].to_dict()
    assert inside(lam * (1 - p ** k), ci.loc["throughput"]), ci.loc["throughput"].to_dict()


def test_littles_law_holds_with_dead_letters():
    # Half the attempts fail, two attempts at most: a quarter of the tasks end in the
    # dead letter, after a backoff. They were in the system too: L = departure rate * W,
    # not throughput (completed only) * W.
    scenario = queue(0.8, Dist.exponential(1.0), c=2, tasks=10000, failure_p=0.5, max_retries=2,
                     backoff=Backoff("exponential", base=1.0, max_delay=60.0))
    runs = replicate(scenario, REPLICATIONS, processes=2).runs
    assert runs["dead_letter_fraction"].mean() == pytest.approx(0.25, abs=0.02)
    L, W = runs["mean_in_system"], runs["mean_time_in_system"]
    for lam in (runs["departure_rate"], runs["arrival_rate"]):
        assert ((lam * W / L - 1).abs() < 0.03).all(), (lam * W / L).tolist()
    assert ((runs["throughput"] * W / L - 1) < -0.2).all()  # a quarter short
