"""Clocks: the queue asks "what time is it?" and never sleeps.

A clock is any zero-argument callable that returns seconds as a float.
The live server passes ``time.time``; the simulation passes
``lambda: env.now`` (SimPy's clock); tests pass a ``ManualClock`` and move
time by hand, so a 30-second lease expires in no time at all.
"""

from __future__ import annotations

import time
from typing import Callable

Clock = Callable[[], float]

system_clock: Clock = time.time


class ManualClock:
    """A clock that only moves when told to: ``clock.advance(30)``."""

    def __init__(self, start: float = 0.0):
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self.now += seconds
        return self.now
