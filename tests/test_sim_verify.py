"""Predict, then verify: the comparison's arithmetic, on hand-made records."""

import math

import numpy as np
import pandas as pd
import pytest

from sim.model import Result, simulate
from sim.presets import preset
from sim.calibration import LIVE_CLAIM_SECONDS, LIVE_RESTART_SECONDS, costs_of_run
from sim.verify import (CLOSE, INSIDE, OUTSIDE, UNDEFINED, band, claim_round_trip, compare,
                        plot_comparison, prediction_interval, smoothed, verdict)


def test_the_prediction_interval_is_for_one_more_run_and_stays_in_range():
    row = prediction_interval([1, 2, 3, 4, 5], bounds=(0, math.inf))
    half = 2.776 * np.std([1, 2, 3, 4, 5], ddof=1) * math.sqrt(1 + 1 / 5)
    assert row["mean"] == 3 and row["n"] == 5
    assert row["low"] == 0  # 3 - 4.81 is below a wait's range: cut at 0
    assert row["high"] == pytest.approx(3 + half)
    assert math.isnan(prediction_interval([2.0])["low"])
    assert prediction_interval([1, math.nan, 3])["n"] == 2


@pytest.mark.parametrize("live, row, expected", [
    (5.0, {"mean": 4.0, "low": 3.0, "high": 6.0}, INSIDE),
    (7.0, {"mean": 4.0, "low": 3.0, "high": 6.0}, OUTSIDE),
    # A narrow interval (half-width under 10% of the mean): 8% off still agrees...
    (1.08, {"mean": 1.0, "low": 0.99, "high": 1.01}, CLOSE),
    # ... 12% off does not.
    (1.12, {"mean": 1.0, "low": 0.99, "high": 1.01}, OUTSIDE),
    # A wide interval gives no such leeway.
    (1.5, {"mean": 1.0, "low": 0.5, "high": 1.4}, OUTSIDE),
    (math.nan, {"mean": 1.0, "low": 0.5, "high": 1.4}, UNDEFINED),
])
def test_the_verdict(live, row, expected):
    assert verdict(live, row) == expected


def test_compare_holds_each_live_figure_against_the_runs():
    runs = pd.DataFrame({"throughput": [1.0, 1.1, 0.9, 1.0],
                         "mean_wait": [2.0, 3.0, 2.5, 2.5]})
    table = compare({"throughput": 1.3, "mean_wait": 2.5, "utilisation": 0.5}, runs)
    assert list(table.index) == ["throughput", "mean_wait"]  # only figures both have
    assert table.loc["throughput", "simulated"] == pytest.approx(1.0)
    assert table.loc["throughput", "difference"] == pytest.approx(0.3)
    assert table.loc["throughput", "verdict"] == OUTSIDE
    assert table.loc["mean_wait", "verdict"] == INSIDE
    assert table.loc["mean_wait", "unit"] == "s"


def hand_made(attempts, ready):
    """A Result holding only what claim_round_trip reads."""
    tasks = pd.DataFrame({"ready": ready})
    frame = pd.DataFrame(attempts, columns=["task", "worker", "start", "end", "outcome"])
    return Result(preset("steady"), 1, 100.0, tasks, frame, pd.DataFrame(), {})


def test_the_claim_round_trip_is_the_gap_when_work_waits():
    result = hand_made([
        (0, 0, 0.0, 2.0, "completed"),
        (1, 0, 2.2, 4.0, "completed"),   # task 1 waited since 1.0: a gap of 0.2
        (2, 0, 10.0, 11.0, "failed"),    # task 2 arrived at 10: the worker was idle, no gap
        (3, 0, 11.4, 12.0, "crashed"),   # waited since 10.5: a gap of 0.4
        (4, 0, 40.0, 41.0, "completed"),  # after a crash: the restart, not a claim
        (5, 1, 0.0, 1.0, "completed"),
        (6, 1, 1.3, 2.0, "completed"),   # worker 2: waited since 0.5, a gap of 0.3
    ], ready=[0.0, 1.0, 10.0, 10.5, 12.5, 0.0, 0.5])
    assert claim_round_trip(result) == pytest.approx(0.3)  # the median of 0.2, 0.4, 0.3
    assert math.isnan(claim_round_trip(hand_made([(0, 0, 0.0, 1.0, "completed")], [0.0])))


def test_a_runs_costs_are_its_round_trip_and_restarts_in_live_seconds():
    result = hand_made([(0, 0, 0.0, 2.0, "completed"), (1, 0, 2.3, 4.0, "completed")],
                       ready=[0.0, 1.0])
    claim, restart = costs_of_run(result, 30.0, restart_seconds=[0.2, 0.5, 0.3])
    assert claim == pytest.approx(0.3 / 30) and restart == 0.3  # medians, live seconds
    # A run where no work waited and no worker restarted keeps the defaults.
    quiet = hand_made([(0, 0, 0.0, 1.0, "completed")], [0.0])
    assert costs_of_run(quiet, 30.0) == (LIVE_CLAIM_SECONDS, LIVE_RESTART_SECONDS)


def test_a_claim_round_trip_in_the_model_is_found_again_by_the_measure():
    scenario = preset("steady").replace(duration=900.0, warmup=0.0, claim_seconds=0.25)
    result = simulate(scenario)
    assert claim_round_trip(result) == pytest.approx(0.25)
    # ... and it costs waiting: the same arrivals wait longer than without it.
    without = simulate(scenario.replace(claim_seconds=0.0))
    assert result.summary["mean_wait"] > without.summary["mean_wait"]


def test_the_band_holds_the_middle_of_the_runs_at_each_time(tmp_path):
    times = np.arange(0, 100.0, 1.0)
    runs = [pd.DataFrame({"time": times, "queue_length": np.full(100, level),
                          "busy_workers": np.zeros(100)}) for level in range(41)]
    b = band(runs, "queue_length", window=1.0)
    assert list(b.columns) == ["time", "q0.025", "q0.5", "q0.975"] and len(b) == 100
    assert (b["q0.5"] == 20).all() and (b["q0.025"] == 1).all() and (b["q0.975"] == 39).all()
    steps = pd.DataFrame({"time": times, "queue_length": (times >= 50) * 10.0})
    averaged = smoothed(steps, "queue_length", window=10.0)
    assert averaged[49] == 0 and averaged[54] == pytest.approx(5) and averaged[60] == 10
    scenario = preset("spike").replace(duration=600.0)
    live = simulate(scenario, 99)
    plot_comparison(live, [simulate(scenario, s) for s in (1, 2, 3)], str(tmp_path / "c.png"))
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
