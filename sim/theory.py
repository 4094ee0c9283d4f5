"""Queueing theory: what the textbook predicts, to hold the simulation against.

A supermarket manager can estimate the queue at the tills without watching
it: with customers arriving at rate ``lam`` (Poisson), each till serving at
rate ``mu`` (exponential service) and ``c`` tills open, the M/M/c formulas
give the chance a customer waits (Erlang C), the mean wait and the mean
queue length. Little's law ties them together in any stable system:
the mean number inside, L, equals the arrival rate times the mean time
inside, W (L = lam * W).

Retries change the load: if each attempt fails with probability p and a
task is tried at most K times (``max_retries=K``), a task makes
1 + p + ... + p**(K-1) = (1 - p**K) / (1 - p) attempts on average, so the
workers see attempts at rate ``lam * (1 - p**K) / (1 - p)``, and a fraction
``p**K`` of tasks fails every attempt and ends in the dead letter.

Symbols: ``lam`` arrivals per second, ``mu`` services per second per
worker, ``c`` workers; ``rho = lam / (c * mu)`` is the utilisation, which
must stay below 1 or the queue grows without bound. ``Wq`` is the mean
wait before service, ``W = Wq + 1/mu`` the mean time in the system,
``Lq`` and ``L`` the mean numbers waiting and in the system.
"""

from __future__ import annotations

from typing import Dict


def utilisation(lam: float, mu: float, c: int = 1) -> float:
    """rho = lam / (c mu): the fraction of time a worker is busy."""
    return lam / (c * mu)


def _check(lam: float, mu: float, c: int) -> float:
    if lam < 0 or mu <= 0 or c < 1:
        raise ValueError("need lam >= 0, mu > 0 and at least one worker")
    rho = utilisation(lam, mu, c)
    if rho >= 1:
        raise ValueError(f"unstable: utilisation {rho:.3f} >= 1, the queue grows without bound")
    return rho


def mm1(lam: float, mu: float) -> Dict[str, float]:
    """M/M/1: Wq = rho / (mu - lam), W = 1 / (mu - lam), Lq = rho**2 / (1 - rho), L = rho / (1 - rho)."""
    rho = _check(lam, mu, 1)
    return {"rho": rho, "P_wait": rho, "Wq": rho / (mu - lam), "W": 1 / (mu - lam),
            "Lq": rho ** 2 / (1 - rho), "L": rho / (1 - rho)}


def erlang_b(c: int, a: float) -> float:
    """Erlang B (blocking probability) for offered load a = lam/mu, by the stable recursion
    B(0) = 1, B(k) = a B(k-1) / (k + a B(k-1))."""
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(c: int, a: float) -> float:
    """Erlang C: the probability that an arriving task must wait (all c workers busy).

    From Erlang B: C = B / (1 - rho (1 - B)), with rho = a / c.
    """
    rho = a / c
    if rho >= 1:
        return 1.0
    b = erlang_b(c, a)
    return b / (1 - rho * (1 - b))


def mmc(lam: float, mu: float, c: int) -> Dict[str, float]:
    """M/M/c: Wq = C(c, a) / (c mu - lam), Lq = lam Wq, W = Wq + 1/mu, L = lam W."""
    rho = _check(lam, mu, c)
    p_wait = erlang_c(c, lam / mu)
    wq = p_wait / (c * mu - lam)
    return {"rho": rho, "P_wait": p_wait, "Wq": wq, "W": wq + 1 / mu,
            "Lq": lam * wq, "L": lam * (wq + 1 / mu)}


def little_L(lam: float, W: float) -> float:
    """Little's law: mean number in the system L = lam * W."""
    return lam * W


def mean_attempts(p: float, max_attempts: int) -> float:
    """Mean attempts per task when each fails with probability p, at most K tries: (1 - p**K) / (1 - p)."""
    if not 0 <= p <= 1 or max_attempts < 1:
        raise ValueError("p is a probability and a task is tried at least once")
    if p == 1:
        return float(max_attempts)
    return (1 - p ** max_attempts) / (1 - p)


def attempt_rate(lam: float, p: float, max_attempts: int) -> float:
    """The arrival rate of attempts seen by the workers: lam * (1 - p**K) / (1 - p)."""
    return lam * mean_attempts(p, max_attempts)


def dead_letter_fraction(p: float, max_attempts: int) -> float:
    """The fraction of tasks whose K attempts all fail: p**K."""
    return p ** max_attempts


def effective_utilisation(lam: float, mean_service: float, c: int, p: float = 0.0,
                          max_attempts: int = 1) -> float:
    """Utilisation with retries: attempts per second times seconds per attempt, per worker."""
    return attempt_rate(lam, p, max_attempts) * mean_service / c
