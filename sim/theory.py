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

Service times that are not exponential (M/G/1, one worker): the mean wait
depends on the service time's second moment, not only its mean
(Pollaczek-Khinchine). Fixed times (M/D/1) wait exactly half as long as
exponential ones of the same mean: the variance is what makes a queue.

Priorities (non-preemptive: a started task is never interrupted): a class
waits for the work already in service, for the waiting work of its own and
higher classes, and for higher-class work that arrives meanwhile. Cobham's
formula gives each class's mean wait.

Symbols: ``lam`` arrivals per second, ``mu`` services per second per
worker, ``c`` workers; ``rho = lam / (c * mu)`` is the utilisation, which
must stay below 1 or the queue grows without bound. ``Wq`` is the mean
wait before service, ``W = Wq + 1/mu`` the mean time in the system,
``Lq`` and ``L`` the mean numbers waiting and in the system.

Sources: L. Kleinrock, *Queueing Systems, Volume 1: Theory* (Wiley, 1975):
M/M/1 and M/M/c with Erlang C (ch. 3), M/G/1 and the Pollaczek-Khinchine
mean-value formula (ch. 5); L. Kleinrock, *Queueing Systems, Volume 2:
Computer Applications* (1976), ch. 3 (priority queueing), and A. Cobham,
"Priority assignment in waiting line problems", *Operations Research* 2(1),
70-76 (1954): non-preemptive priorities, one server and c exponential servers;
J. D. C. Little, "A proof for the queuing formula L = lambda W",
*Operations Research* 9(3), 383-387 (1961).
"""

from __future__ import annotations

from typing import Dict, List, Sequence


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


def mean_attempts(p: float, max_retries: int) -> float:
    """Mean attempts per task when each fails with probability p, at most K = max_retries
    tries: (1 - p**K) / (1 - p)."""
    if not 0 <= p <= 1 or max_retries < 1:
        raise ValueError("p is a probability and a task is tried at least once")
    if p == 1:
        return float(max_retries)
    return (1 - p ** max_retries) / (1 - p)


def attempt_rate(lam: float, p: float, max_retries: int) -> float:
    """The arrival rate of attempts seen by the workers: lam * (1 - p**K) / (1 - p)."""
    return lam * mean_attempts(p, max_retries)


def dead_letter_fraction(p: float, max_retries: int) -> float:
    """The fraction of tasks whose K attempts all fail: p**K."""
    return p ** max_retries


def effective_utilisation(lam: float, mean_service: float, c: int, p: float = 0.0,
                          max_retries: int = 1) -> float:
    """Utilisation with retries: attempts per second times seconds per attempt, per worker."""
    return attempt_rate(lam, p, max_retries) * mean_service / c


# -- M/G/1: any service time distribution, one worker -----------------------------------

def mg1(lam: float, mean_service: float, second_moment: float) -> Dict[str, float]:
    """M/G/1, the Pollaczek-Khinchine mean-value formula (Kleinrock 1975, ch. 5):

        Wq = lam * E[S**2] / (2 * (1 - rho)),   rho = lam * E[S],

    with E[S**2] = Var(S) + E[S]**2 the service time's second moment. Then
    W = Wq + E[S], Lq = lam * Wq, L = lam * W, and P(wait > 0) = rho: with
    Poisson arrivals an arrival sees the worker busy for the share of time it
    is busy (PASTA). Exponential service (E[S**2] = 2 E[S]**2) gives M/M/1.
    """
    if mean_service <= 0 or second_moment < mean_service ** 2:
        raise ValueError("need E[S] > 0 and E[S**2] >= E[S]**2")
    rho = _check(lam, 1 / mean_service, 1)
    wq = lam * second_moment / (2 * (1 - rho))
    return {"rho": rho, "P_wait": rho, "Wq": wq, "W": wq + mean_service,
            "Lq": lam * wq, "L": lam * (wq + mean_service)}


def md1(lam: float, service: float) -> Dict[str, float]:
    """M/D/1, every task takes exactly ``service`` seconds: P-K with E[S**2] = service**2,

        Wq = rho * service / (2 * (1 - rho)),

    half the M/M/1 wait at the same load (M/M/1 has E[S**2] = 2 * service**2)."""
    return mg1(lam, service, service ** 2)


# -- non-preemptive priorities (Cobham 1954) --------------------------------------------

def _cobham(w0: float, loads: Sequence[float]) -> List[float]:
    """W_k = W0 / ((1 - sigma_{k-1}) * (1 - sigma_k)), sigma_k = load of classes 1..k."""
    waits, above = [], 0.0
    for load in loads:
        below = above + load
        if below >= 1:
            raise ValueError(f"unstable: classes up to this one load the workers {below:.3f} >= 1")
        waits.append(w0 / ((1 - above) * (1 - below)))
        above = below
    return waits


def priority_mg1(lams: Sequence[float], mean_services: Sequence[float],
                 second_moments: Sequence[float]) -> List[float]:
    """Mean wait of each priority class in an M/G/1 queue, highest priority first.

    Cobham (1954); Kleinrock (1976), ch. 3. Class k arrives at ``lams[k]``
    (Poisson) with service moments E[S_k], E[S_k**2]; rho_k = lam_k * E[S_k] and
    sigma_k = rho_1 + ... + rho_k. A class-k task waits, on average,

        W_k = W0 / ((1 - sigma_{k-1}) * (1 - sigma_k)),   W0 = sum_i lam_i * E[S_i**2] / 2,

    W0 being the mean residual work of the task in service when it arrives.
    With one class this is Pollaczek-Khinchine.
    """
    if not len(lams) == len(mean_services) == len(second_moments):
        raise ValueError("one rate, mean and second moment per class")
    w0 = sum(l * m2 for l, m2 in zip(lams, second_moments)) / 2
    return _cobham(w0, [l * m for l, m in zip(lams, mean_services)])


def priority_mmc(lams: Sequence[float], mu: float, c: int) -> List[float]:
    """Mean wait of each priority class in an M/M/c queue, all classes served at rate ``mu``.

    Cobham (1954), the multi-server case (also Gross and Harris, *Fundamentals
    of Queueing Theory*, on priority disciplines). With sigma_k = (lam_1 + ... + lam_k) / (c * mu),

        W_k = W0 / ((1 - sigma_{k-1}) * (1 - sigma_k)),   W0 = C(c, a) / (c * mu),

    where C(c, a) is Erlang C for the total offered load a = sum(lams) / mu: an
    arrival finds all c workers busy with probability C, and then waits for the
    first of c exponential services to end, 1 / (c mu) on average. With one class
    this is the M/M/c wait C / (c mu - lam). The rates must be equal: with
    different service rates per class the M/M/c case has no such closed form.
    """
    lam = sum(lams)
    _check(lam, mu, c)
    w0 = erlang_c(c, lam / mu) / (c * mu)
    return _cobham(w0, [l / (c * mu) for l in lams])
