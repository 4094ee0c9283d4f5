"""Simulation against theory: which textbook figures apply to a scenario.

A formula is a map drawn for flat country: it is exact only where its
assumptions hold, and some of its parts survive outside them. This module
says which formulas apply to a scenario and what they predict, so that plots
and the command line can set simulation and theory side by side. A formula
whose assumptions a scenario breaks is not offered at all: a wrong textbook
value beside a right simulation would teach the wrong thing.

* Any arrivals, no crashes, no capacity (with the stable load ``rho < 1``
  for the rates): the arrival rate; the dead-letter fraction p**K and the
  mean attempts (1 - p**K) / (1 - p) when attempts fail independently with
  probability p; the attempt rate lam (1 - p**K) / (1 - p); the utilisation,
  attempts per second times seconds per attempt over c workers; the
  throughput lam (1 - p**K); the departure rate lam (every admitted task
  leaves, completed or dead-lettered).
* Waits need a plain queue: constant-rate Poisson arrivals, no
  ``execute_at`` delays, no failures, no crashes, no capacity, and tasks of
  half a second or more on average (shorter ones, workers claim several at
  a time: see ``queue_system/worker/prefetch.py``). Then:

  - one worker, any service times (M/G/1): P(wait > 0) = rho,
    Pollaczek-Khinchine for the mean wait, Cobham's M/G/1 formula per
    priority;
  - c workers, exponential service with one mean for every task (M/M/c):
    P(wait > 0) by Erlang C, the Erlang C waits, and Cobham's M/M/c formula
    per priority. Priorities reorder who waits, not how many: with equal
    exponential services the number of tasks inside is the FIFO queue's, so
    the overall figures stay Erlang C's;
  - c > 1 workers with other service times (M/G/c): no exact formula, none
    offered.

Little's law holds for any stable system; the labs check it on the
simulated figures themselves.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from queue_system.task import PRIORITIES
from queue_system.worker.prefetch import DEFAULT_BUDGET

from . import theory
from .scenario import Scenario


# The textbook's server takes one task at a time. The workers' prefetch rule claims one
# at a time only when tasks take longer than its budget: with a mean of 5 budgets or more,
# several at once is so rare that the textbook still describes them.
ONE_AT_A_TIME = 5 * DEFAULT_BUDGET


def is_plain(scenario: Scenario) -> bool:
    """Constant-rate Poisson arrivals straight into the queue, and nothing but queueing:
    no execute_at delay, no failure, no crash, no capacity, and tasks long enough that the
    workers claim them one at a time. Service times may be anything else."""
    return (scenario.constant_rate()
            and all(k.delay.kind == "fixed" and k.delay.a == 0 for k in scenario.kinds())
            and scenario.failure_p == 0 and scenario.crash_rate == 0
            and scenario.capacity is None and scenario.mean_service() >= ONE_AT_A_TIME)


def one_exponential_service(scenario: Scenario) -> bool:
    """Every task's service time is exponential, with one mean for all."""
    kinds = scenario.kinds()
    return (all(k.service.kind == "exponential" for k in kinds)
            and len({k.service.mean for k in kinds}) == 1)


def is_mmc(scenario: Scenario) -> bool:
    """The textbook M/M/c: a plain queue, one exponential service, one priority."""
    return (is_plain(scenario) and one_exponential_service(scenario)
            and len({k.priority for k in scenario.kinds()}) == 1)


def priority_classes(scenario: Scenario) -> List[Tuple[str, float, float, float]]:
    """Per priority present, highest first: (name, arrival rate, E[S], E[S**2]).

    A class mixes every kind of that priority, weighted by its rate: its
    moments are the mixture's (E[S**2] = Var(S) + E[S]**2 for each kind).
    Poisson producers only (``is_plain``): a class's rate is then constant.
    """
    rate = {p: 0.0 for p in PRIORITIES}
    first = {p: 0.0 for p in PRIORITIES}
    second = {p: 0.0 for p in PRIORITIES}
    for producer in scenario.producers:
        total = sum(k.share for k in producer.mix)
        for k in producer.mix:
            lam = producer.arrivals.rate * k.share / total
            mean = k.service.mean
            rate[k.priority] += lam
            first[k.priority] += lam * mean
            second[k.priority] += lam * mean ** 2 * (1 + k.service.scv)
    return [(p, rate[p], first[p] / rate[p], second[p] / rate[p])
            for p in PRIORITIES if rate[p] > 0]


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
            out["departure_rate"] = lam
            out["attempt_rate"] = theory.attempt_rate(lam, p, k)
            out["mean_attempts"] = theory.mean_attempts(p, k)
    if is_plain(scenario) and service > 0 and lam > 0:
        out.update(_waits(scenario, lam, service))
    return out


def _waits(scenario: Scenario, lam: float, service: float) -> Dict[str, float]:
    """The wait figures of a plain queue, where a formula gives them (see the module's doc)."""
    c = scenario.workers
    classes = priority_classes(scenario)
    lams = [cls[1] for cls in classes]
    if c == 1:
        if lam * service >= 1:
            return {}
        per_class = theory.priority_mg1(lams, [cls[2] for cls in classes],
                                        [cls[3] for cls in classes])
        p_wait = lam * service  # rho: P(wait > 0) in M/G/1
    elif one_exponential_service(scenario):
        mu = 1 / service
        if lam >= c * mu:
            return {}
        per_class = theory.priority_mmc(lams, mu, c)
        p_wait = theory.erlang_c(c, lam / mu)
    else:
        return {}  # M/G/c: no exact formula
    # The overall mean wait: each class's, weighted by its share of arrivals (with one
    # class, P-K or Erlang C; with equal exponential services, Erlang C whatever the order).
    wq = sum(l * w for l, w in zip(lams, per_class)) / lam
    out = {"p_wait": p_wait, "mean_wait": wq, "mean_first_wait": wq,
           "mean_time_in_system": wq + service, "mean_queue_length": lam * wq,
           "mean_in_system": lam * (wq + service)}
    for (name, *_), w in zip(classes, per_class):
        out[f"mean_wait_{name}"] = w
    return out
