"""Intervals that stay in a figure's range: no negative wait, no fraction above 1.

The issue's case: over the spike preset's 10 default runs, the t interval of the
median wait was [-0.017, 0.116] s. Quantiles now get a bootstrap, the other figures a t
interval cut to their range.
"""

import math

import numpy as np
import pytest

from sim import preset
from sim.replications import (bootstrap_interval, confidence_interval, figure_interval,
                              replicate)
from sim.summary import FIGURES, figure_range


@pytest.fixture(scope="module")
def spike():
    return replicate(preset("spike"), 10, processes=2)  # seeds 1-10, as `python -m sim run` does


def test_the_spike_median_wait_no_longer_reaches_below_zero(spike):
    values = spike.runs["p50_wait"]
    old = confidence_interval(values)
    assert old["low"] == pytest.approx(-0.0166, abs=5e-4)  # the interval...
    assert old["high"] == pytest.approx(0.1159, abs=5e-4)
    row = spike.ci().loc["p50_wait"]
    assert 0 <= row["low"] <= row["mean"] <= row["high"]  # ...and now
    assert values.min() <= row["low"] and row["high"] <= values.max()
    assert row["mean"] == pytest.approx(values.mean())


@pytest.mark.parametrize("name", ["spike", "worker-crash"])
def test_every_interval_stays_in_its_figure_s_range(spike, name):
    reps = spike if name == "spike" else replicate(
        preset(name).replace(duration=1200.0, warmup=120.0), 5, processes=2)
    ci = reps.ci()
    assert list(ci.index) == list(FIGURES)
    assert list(ci.columns) == ["mean", "half_width", "low", "high", "n", "unit"]
    for figure, row in ci.dropna(subset=["low"]).iterrows():
        low, high = figure_range(figure)
        assert low <= row["low"] <= row["mean"] <= row["high"] <= high, (figure, row.to_dict())
        assert row["half_width"] == pytest.approx((row["high"] - row["low"]) / 2)


def test_a_fraction_is_cut_to_zero_and_one():
    rare = [0, 0, 0, 0, 0.01]  # a dead letter in one run out of five
    assert confidence_interval(rare)["low"] < 0
    row = figure_interval("dead_letter_fraction", rare)
    assert row["low"] == 0 and row["high"] == pytest.approx(confidence_interval(rare)["high"])
    assert figure_interval("p_wait", [1, 1, 1, 0.95, 1])["high"] == 1
    # Inside the range nothing changes: the plain t interval.
    assert figure_interval("mean_wait", [1, 2, 3, 4, 5]) == pytest.approx(
        confidence_interval([1, 2, 3, 4, 5]))


def test_the_bootstrap_is_seeded_and_stays_within_the_values():
    values = [0, 0, 0.28, 0, 0.09, 0, 0, 0, 0.13, 0]
    a, b = bootstrap_interval(values), bootstrap_interval(values)
    assert a == b
    assert 0 <= a["low"] < a["mean"] < a["high"] <= 0.28
    assert math.isnan(bootstrap_interval([0.5])["low"])
    assert bootstrap_interval([2.0, 2.0, 2.0])["low"] == 2.0


def test_the_bootstrap_covers_about_95_percent_on_normal_values():
    # The expanded percentile interval's reason to be: the plain one (the middle 95% of
    # the resampled means) covers only about 91% with 10 values. Over 1000 samples of
    # 10, a 95% method's coverage lies in [0.925, 0.975] with probability 0.99 or more.
    rng = np.random.default_rng(7)
    hits = sum(row["low"] <= 5.0 <= row["high"]
               for row in (bootstrap_interval(rng.normal(5.0, 1.0, 10)) for _ in range(1000)))
    assert 0.925 <= hits / 1000 <= 0.975, hits
