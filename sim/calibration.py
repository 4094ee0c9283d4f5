"""Calibration: the live system's costs, measured, added to the model, and what each one moves.

The textbook's worker starts the next task the instant the last one ends.
A live worker cannot: its report and its next claim are an HTTP round trip
and a commit. A crashed worker does not come back the instant the scenario
says either: a new process has to start. ``calibrated`` gives a scenario
those costs, measured on the live system, in the scenario's own time; and
``predict`` runs the simulation once per step of that calibration (the
textbook's worker, then each cost added in turn), so a comparison can show
how far each cost moves the prediction of a live run.

The defaults were measured on the project machine; another machine has
another disk and another round trip (4.4 ms there, 6 to 7 ms on a later
machine of the same kind). ``costs_of_run`` reads both costs from a live
run's own records, for a prediction calibrated on the machine that ran it
(``sim live --calibrate run``). It takes only the costs from the run, never
the figures the prediction is compared on.

``sim live``, Lab 08 and ``bench/bench_live.py`` all predict through
``predict``: one set of seeds, one order of steps.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import List, Sequence, Tuple

from .replications import Replications, replicate
from .scenario import Scenario
from .verify import claim_round_trip

# A live worker's report and next claim, end of one attempt to the start of the next when
# work waits (``verify.claim_round_trip``), in live seconds: 4.3 and 4.5 ms in two runs of
# 'steady' at speed-ups 30 and 10 on the 2-core project machine, most of it the commit's
# fsync.
LIVE_CLAIM_SECONDS = 0.0044
# A restarted worker's start-up, from its new process to its first claim (a fresh Python,
# the package's imports, its connection), in live seconds, as ``live.LiveRun`` times it
# (``restart_seconds``): medians of 0.28 s and 0.23 s over 36 restarts each, at 30x and
# 10x, on the project machine.
LIVE_RESTART_SECONDS = 0.25
TEXTBOOK, CLAIM, RESTART = "textbook", "+ claim round trip", "+ restart start-up"


def calibrated(scenario: Scenario, speedup: float,
               claim_seconds: float = LIVE_CLAIM_SECONDS,
               restart_seconds: float = LIVE_RESTART_SECONDS) -> Scenario:
    """``scenario`` with the live system's costs the model leaves out unless told, in
    live seconds, each multiplied by ``speedup`` into the scenario's time: a claim's
    round trip (``claim_seconds``), and, where workers crash, the start-up of the new
    process, added to the restart delay (``restart_seconds``)."""
    changes = {"claim_seconds": claim_seconds * speedup}
    if scenario.crash_rate > 0:
        changes["restart_delay"] = scenario.restart_delay + restart_seconds * speedup
    return scenario.replace(**changes)


def costs_of_run(result, speedup: float, restart_seconds: Sequence[float] = ()) -> Tuple[float, float]:
    """(claim round trip, restart start-up) in live seconds, as a live run ``result`` at
    ``speedup`` measured them: the median gap between one attempt and the next when work
    waited (``verify.claim_round_trip``), and the median of its restarts' start-ups
    (``LiveRun.restart_seconds``). A cost the run never showed keeps its default."""
    claim = claim_round_trip(result) / speedup
    if not math.isfinite(claim):
        claim = LIVE_CLAIM_SECONDS  # no worker ever found work waiting
    restart = statistics.median(restart_seconds) if restart_seconds else LIVE_RESTART_SECONDS
    return claim, restart


@dataclass
class Prediction:
    """What the simulation predicts of a live run of a scenario, step by step.

    ``steps`` are (label, replications) from the textbook's worker to the fully
    calibrated ``model``; the last is the prediction a live run is judged by."""

    model: Scenario
    steps: List[Tuple[str, Replications]]

    @property
    def textbook(self) -> Replications:
        return self.steps[0][1]

    @property
    def calibrated(self) -> Replications:
        return self.steps[-1][1]


def predict(scenario: Scenario, speedup: float, replications: int = 20,
            claim_seconds: float = LIVE_CLAIM_SECONDS,
            restart_seconds: float = LIVE_RESTART_SECONDS, keep: bool = False) -> Prediction:
    """Simulate ``scenario`` ``replications`` times at each step of its calibration for a
    live run at ``speedup``. ``keep`` keeps the calibrated runs' records (for a plot).

    The seeds follow the live run's own (``scenario.seed``): the live run's arrivals are
    not also one of the predictions'. Every step uses the same seeds, so the steps differ
    by their costs only."""
    if replications < 2:
        raise ValueError("a prediction needs at least 2 replications: one run has no interval")
    model = calibrated(scenario, speedup, claim_seconds, restart_seconds)
    first = scenario.seed + 1
    steps = [(TEXTBOOK, replicate(scenario, replications, first_seed=first))]
    if scenario.crash_rate > 0:
        claim_only = calibrated(scenario, speedup, claim_seconds, restart_seconds=0.0)
        steps.append((CLAIM, replicate(claim_only, replications, first_seed=first)))
        steps.append((RESTART, replicate(model, replications, keep=keep, first_seed=first)))
    else:
        steps.append((CLAIM, replicate(model, replications, keep=keep, first_seed=first)))
    return Prediction(model, steps)
