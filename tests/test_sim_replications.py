"""Replications and confidence intervals."""

import math

import pytest

from sim import preset
from sim.replications import confidence_interval, replicate, t975


def test_confidence_interval_by_hand():
    # 1..5: mean 3, s = sqrt(2.5), half-width = t(0.975, 4) * s / sqrt(5) = 2.776 * 0.7071.
    ci = confidence_interval([1, 2, 3, 4, 5])
    assert ci["mean"] == 3
    assert ci["half_width"] == pytest.approx(2.776 * math.sqrt(2.5) / math.sqrt(5), rel=1e-4)
    assert ci["low"] == pytest.approx(3 - ci["half_width"])
    assert math.isnan(confidence_interval([4.0])["half_width"])


def test_t_quantiles():
    assert t975(9) == pytest.approx(2.262)
    assert t975(60) == pytest.approx(2.000, abs=0.002)
    assert t975(1000) == pytest.approx(1.962, abs=0.002)


def test_parallel_and_sequential_replications_agree():
    scenario = preset("steady").replace(duration=600.0, warmup=60.0)
    one = replicate(scenario, 3, processes=1)
    two = replicate(scenario, 3, processes=2)
    assert one.seeds == two.seeds == [scenario.seed, scenario.seed + 1, scenario.seed + 2]
    assert one.runs.equals(two.runs)
    assert one.runs["mean_wait"].nunique() == 3  # different seeds, different runs
    ci = one.ci()
    assert set(["mean_wait", "utilisation", "throughput"]) <= set(ci.index)
    # One priority and no failures: no high or low priority task, no retry, so no figure.
    empty = ci["n"] == 0
    assert set(ci.index[empty]) == {"mean_wait_high", "mean_wait_low", "mean_retry_wait"}
    assert (ci.loc[~empty, "low"] <= ci.loc[~empty, "mean"]).all()
    assert (ci.loc[~empty, "mean"] <= ci.loc[~empty, "high"]).all()
