"""Simulation against theory: which textbook figures apply to a scenario.

A formula is a map drawn for flat country: it is exact for M/M/c (one
steady Poisson stream, exponential service, no failures, no crashes), and
some of its parts survive outside it. Utilisation is always offered work
divided by capacity (with retries, the attempt rate times the mean service
time); the dead-letter fraction is always p**K when attempts fail
independently; Little's law holds for any stable system. This module says
which of these apply to a scenario and what they predict, so that plots and
the command line can set simulation and theory side by side.
"""

from __future__ import annotations

from typing import Dict, Optional

from . import theory
from .scenario import Scenario


def is_mmc(scenario: Scenario) -> bool:
    """One or more constant-rate Poisson producers, exponential service, nothing else."""
    kinds = scenario.kinds()
    return (all(p.arrivals.kind == "poisson" for p in scenario.producers)
            and all(k.service.kind == "exponential" for k in kinds)
            and len({k.service.mean for k in kinds}) == 1
            and len({k.priority for k in kinds}) == 1
            and all(k.delay.kind == "fixed" and k.delay.a == 0 for k in kinds)
            and scenario.failure_p == 0 and scenario.crash_rate == 0
            and scenario.capacity is None)


def no_theory_reason(scenario: Scenario) -> Optional[str]:
    """Why theory has nothing to say about this scenario at all, or None if it has.

    Every formula starts from the arrival rate. A run stopped by ``max_tasks``
    instead of a duration has no time window to average a changing rate over
    (a spike's share depends on when the run ends), so only constant rates qualify.
    """
    if scenario.duration is None and not scenario.constant_rate():
        return ("no theory: the run has no duration and its arrival rate changes over time, "
                "so there is no average rate to start from")
    return None


def predictions(scenario: Scenario) -> Dict[str, float]:
    """Theory's value for each summary figure it can predict for this scenario."""
    if no_theory_reason(scenario):
        return {}
    start = scenario.warmup
    lam = scenario.arrival_rate(start)
    service = scenario.mean_service()
    c, p, k = scenario.workers, scenario.failure_p, scenario.max_retries
    out: Dict[str, float] = {}
    if scenario.capacity is None:
        out["arrival_rate"] = lam
        rho = theory.effective_utilisation(lam, service, c, p, k)
        # A crash also costs the task an attempt: with crashes these formulas undercount.
        if scenario.crash_rate == 0:
            out["dead_letter_fraction"] = theory.dead_letter_fraction(p, k)
        if scenario.crash_rate == 0 and rho < 1:
            out["utilisation"] = rho
            out["throughput"] = lam * (1 - theory.dead_letter_fraction(p, k))
            out["mean_attempts"] = theory.mean_attempts(p, k)
    if is_mmc(scenario) and service > 0:
        mu = 1 / service
        if lam < c * mu:
            m = theory.mmc(lam, mu, c)
            out.update({"mean_wait": m["Wq"], "mean_time_in_system": m["W"],
                        "mean_queue_length": m["Lq"], "mean_in_system": m["L"]})
    return out
