"""Theory formulas against values worked out by hand (textbook M/M/1, M/M/c, retries)."""

import math

import pytest

from sim import theory as T


def test_mm1_by_hand():
    # lam = 0.5, mu = 1: rho = 0.5, Wq = rho / (mu - lam) = 1, W = 2, Lq = 0.25 / 0.5, L = 1.
    m = T.mm1(0.5, 1.0)
    assert m["rho"] == pytest.approx(0.5)
    assert m["Wq"] == pytest.approx(1.0)
    assert m["W"] == pytest.approx(2.0)
    assert m["Lq"] == pytest.approx(0.5)
    assert m["L"] == pytest.approx(1.0)
    # lam = 0.8: Wq = 0.8 / 0.2 = 4, Lq = 0.64 / 0.2 = 3.2.
    m = T.mm1(0.8, 1.0)
    assert m["Wq"] == pytest.approx(4.0)
    assert m["Lq"] == pytest.approx(3.2)


def test_mmc_with_one_worker_is_mm1():
    for lam in (0.1, 0.5, 0.8, 0.95):
        a, b = T.mmc(lam, 1.0, 1), T.mm1(lam, 1.0)
        for key in ("Wq", "W", "Lq", "L"):
            assert a[key] == pytest.approx(b[key])


def test_mm2_by_hand():
    # lam = 1, mu = 1, c = 2: a = 1, rho = 0.5.
    # P0 = 1 / (1 + a + a**2 / 2! / (1 - rho)) = 1/3; C = a**2 / 2! / (1 - rho) * P0 = 1/3.
    m = T.mmc(1.0, 1.0, 2)
    assert m["P_wait"] == pytest.approx(1 / 3)
    assert m["Wq"] == pytest.approx(1 / 3)   # C / (c mu - lam) = (1/3) / 1
    assert m["Lq"] == pytest.approx(1 / 3)
    assert m["W"] == pytest.approx(4 / 3)


def explicit_erlang_c(c, a):
    """The textbook sum form, written independently of the module's recursion."""
    rho = a / c
    tail = a ** c / math.factorial(c) / (1 - rho)
    p0 = 1 / (sum(a ** k / math.factorial(k) for k in range(c)) + tail)
    return tail * p0


@pytest.mark.parametrize("lam,c", [(1.5, 3), (2.4, 3), (7.0, 10), (0.3, 2)])
def test_erlang_c_matches_the_sum_formula(lam, c):
    assert T.erlang_c(c, lam) == pytest.approx(explicit_erlang_c(c, lam))
    m = T.mmc(lam, 1.0, c)
    assert m["Wq"] == pytest.approx(explicit_erlang_c(c, lam) / (c - lam))


def test_mm3_at_0_8_textbook_value():
    # A classic table value: M/M/3 at rho = 0.8 has P(wait) = 0.6472.
    assert T.mmc(2.4, 1.0, 3)["P_wait"] == pytest.approx(0.6472, abs=1e-4)


def test_erlang_b_one_server():
    assert T.erlang_b(1, 2.0) == pytest.approx(2 / 3)


def test_unstable_systems_are_refused():
    with pytest.raises(ValueError):
        T.mm1(1.0, 1.0)
    with pytest.raises(ValueError):
        T.mmc(3.5, 1.0, 3)


def test_littles_law():
    assert T.little_L(2.0, 3.5) == 7.0
    m = T.mmc(2.4, 1.0, 3)
    assert m["L"] == pytest.approx(T.little_L(2.4, m["W"]))


def test_retries_by_hand():
    # p = 0.2, at most 3 attempts: 1 + 0.2 + 0.04 = 1.24 attempts per task, 0.008 dead.
    assert T.mean_attempts(0.2, 3) == pytest.approx(1.24)
    assert T.attempt_rate(2.0, 0.2, 3) == pytest.approx(2.48)
    assert T.dead_letter_fraction(0.2, 3) == pytest.approx(0.008)
    assert T.attempt_rate(1.0, 0.0, 3) == 1.0
    assert T.attempt_rate(1.0, 1.0, 3) == 3.0
    assert T.effective_utilisation(1.6, 1.0, 3, 0.2, 3) == pytest.approx(1.6 * 1.24 / 3)
