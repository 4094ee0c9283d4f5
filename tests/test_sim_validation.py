"""The simulation against queueing theory, over replications, after a warm-up.

Each check asks that the textbook value lies inside the simulation's 95%
confidence interval over 10 independent replications. Seeds are fixed, so
the outcome is deterministic; with a wrong model (a wrong service order,
lost tasks, a busy-time error) the intervals, a few percent wide, miss.
"""

import pytest

from sim import mmc_scenario, theory
from sim.replications import replicate

REPLICATIONS = 10
TASKS_PER_RUN = 20000
SEED = 100


def run(lam, mu, c, **changes):
    # Run length in tasks, warm-up a tenth of it (the system starts empty).
    duration = TASKS_PER_RUN / lam
    scenario = mmc_scenario(lam, mu, c, duration=duration, warmup=duration / 10, seed=SEED,
                            **changes)
    return replicate(scenario, REPLICATIONS, processes=2)


CASES = {  # name: (lam, mu, c)
    "M/M/1 rho=0.5": (0.5, 1.0, 1),
    "M/M/1 rho=0.8": (0.8, 1.0, 1),
    "M/M/3 rho=0.5": (1.5, 1.0, 3),
    "M/M/3 rho=0.8": (2.4, 1.0, 3),
}


@pytest.fixture(scope="module")
def runs():
    return {name: run(*params) for name, params in CASES.items()}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("figure,key", [("mean_wait", "Wq"), ("utilisation", "rho"),
                                        ("mean_queue_length", "Lq")])
def test_mmc_inside_the_95_interval(runs, case, figure, key):
    lam, mu, c = CASES[case]
    expected = theory.mmc(lam, mu, c)[key]
    ci = runs[case].ci().loc[figure]
    assert ci["low"] <= expected <= ci["high"], (case, figure, expected, ci.to_dict())
    # The interval is tight enough to mean something.
    assert ci["half_width"] < 0.1 * expected


def test_failures_and_retries_inside_the_95_interval():
    # p = 0.2, max_retries = 3 (at most 3 attempts); lam chosen for an effective
    # utilisation of 1.6 * 1.24 / 3 = 0.66 (at most 0.7).
    lam, mu, c, p, k = 1.6, 1.0, 3, 0.2, 3
    rho = theory.effective_utilisation(lam, 1 / mu, c, p, k)
    assert rho <= 0.7
    reps = run(lam, mu, c, failure_p=p, max_retries=k)
    ci = reps.ci()
    dead = ci.loc["dead_letter_fraction"]
    assert dead["low"] <= theory.dead_letter_fraction(p, k) <= dead["high"], dead.to_dict()
    util = ci.loc["utilisation"]
    assert util["low"] <= rho <= util["high"], util.to_dict()
    attempts = ci.loc["mean_attempts"]
    assert attempts["low"] <= theory.mean_attempts(p, k) <= attempts["high"], attempts.to_dict()
    # The naive utilisation (ignoring retries) is outside the interval.
    assert not util["low"] <= lam / (c * mu) <= util["high"]
