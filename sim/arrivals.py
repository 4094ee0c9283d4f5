"""Arrival processes: when producers hand tasks to the queue.

Picture the orders reaching an online shop. On an ordinary afternoon they
come at random but at a steady average pace: a *Poisson process* (the gaps
are exponential, each arrival independent of the last). On Black Friday at
noon the pace triples for an hour: a rate that changes with time, here
*piecewise constant* or any function ``rate(t)``. To reproduce last week's
incident you play the recorded arrival times again.

A time-varying Poisson process is drawn by *thinning* (Lewis and Shedler):
propose arrivals at the highest rate ``max_rate``, and keep a proposal at
time t with probability ``rate(t) / max_rate``. What is kept is exactly a
Poisson process of rate ``rate(t)``.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

from .checks import number, sequence

KINDS = ("poisson", "piecewise", "function", "recorded")


def _segment(segment) -> Tuple[float, float]:
    """A piecewise segment ``[start, rate]`` as two floats, both zero or more; else a ValueError."""
    if not isinstance(segment, (list, tuple)) or len(segment) != 2:
        raise ValueError(f"piecewise: each segment is a [start, rate] pair, not {segment!r}")
    return (number("piecewise: a segment's start", segment[0], low=0),
            number("piecewise: a segment's rate", segment[1], low=0))


@dataclass(frozen=True)
class Arrivals:
    """How one producer submits: ``Arrivals.poisson(2.0)`` is 2 tasks per second on average.

    * ``poisson``: constant ``rate`` (tasks per second);
    * ``piecewise``: ``segments`` of ``(start_time, rate)``, each rate holding
      until the next start (the last one forever);
    * ``function``: ``rate_fn(t)``, never above ``max_rate`` (not JSON-loadable);
    * ``recorded``: the given arrival ``times`` (seconds), in order.
    """

    kind: str = "poisson"
    rate: float = 1.0
    segments: Tuple[Tuple[float, float], ...] = ()
    times: Tuple[float, ...] = ()
    rate_fn: Optional[Callable[[float], float]] = field(default=None, compare=False)
    max_rate: Optional[float] = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"arrivals must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.kind == "poisson":
            number("poisson: the rate", self.rate, low=0)
        if self.kind == "piecewise":
            self._check_segments()
        if self.kind == "function":
            if not callable(self.rate_fn):
                raise ValueError("function: give rate_fn, a function of time")
            # Thinning proposes arrivals at max_rate: an infinite one would never advance.
            number("function: max_rate", self.max_rate, above=0)
        if self.kind == "recorded":
            for t in self.times:
                number("recorded: an arrival time", t, low=0)
            if list(self.times) != sorted(self.times):
                raise ValueError("recorded: arrival times must be in increasing order")

    def _check_segments(self) -> None:
        if not self.segments:
            raise ValueError("piecewise: give at least one [start, rate] segment")
        for segment in self.segments:
            _segment(segment)
        starts = [s for s, _ in self.segments]
        if any(b <= a for a, b in zip(starts, starts[1:])):
            raise ValueError(f"piecewise: segment starts must increase, not {starts}")

    # -- constructors -----------------------------------------------------------

    # The constructors store floats; ``number`` first, as float() would turn "2" or
    # True into a number and hide the typo.

    @classmethod
    def poisson(cls, rate: float) -> "Arrivals":
        return cls("poisson", rate=number("poisson: the rate", rate))

    @classmethod
    def piecewise(cls, segments: Sequence[Tuple[float, float]]) -> "Arrivals":
        return cls("piecewise", segments=tuple(_segment(s) for s in sequence("piecewise", segments)))

    @classmethod
    def function(cls, rate_fn: Callable[[float], float], max_rate: float) -> "Arrivals":
        return cls("function", rate_fn=rate_fn, max_rate=number("function: max_rate", max_rate))

    @classmethod
    def recorded(cls, times: Sequence[float]) -> "Arrivals":
        return cls("recorded", times=tuple(number("recorded: an arrival time", t)
                                           for t in sequence("recorded", times)))

    # -- what it means ------------------------------------------------------------

    def rate_at(self, t: float) -> float:
        """The arrival rate at time t (tasks per second); recorded times have none."""
        if self.kind == "poisson":
            return self.rate
        if self.kind == "piecewise":
            i = bisect.bisect_right([s for s, _ in self.segments], t) - 1
            return self.segments[i][1] if i >= 0 else 0.0
        if self.kind == "function":
            return float(self.rate_fn(t))
        raise ValueError("recorded arrival times have no rate")

    def mean_rate(self, start: float, end: float) -> float:
        """Average rate over [start, end]: the integral of rate(t) divided by the length."""
        if end <= start:
            return self.rate_at(start) if self.kind != "recorded" else 0.0
        if self.kind == "poisson":
            return self.rate
        if self.kind == "recorded":
            lo, hi = bisect.bisect_left(self.times, start), bisect.bisect_left(self.times, end)
            return (hi - lo) / (end - start)
        if self.kind == "piecewise":
            total = 0.0
            bounds = [s for s, _ in self.segments[1:]] + [math.inf]
            for (s, r), e in zip(self.segments, bounds):
                lo, hi = max(s, start), min(e, end)
                if hi > lo:
                    total += r * (hi - lo)
            return total / (end - start)
        steps = 1000  # a function: midpoint rule is plenty for a summary figure
        h = (end - start) / steps
        return sum(self.rate_at(start + (i + 0.5) * h) for i in range(steps)) / steps

    def busy_windows(self) -> List[Tuple[float, float]]:
        """Intervals where the rate is above the first segment's (the usual pace): the spikes."""
        if self.kind != "piecewise":
            return []
        low = self.segments[0][1]
        bounds = [s for s, _ in self.segments[1:]] + [math.inf]
        return [(s, e) for (s, r), e in zip(self.segments, bounds) if r > low]

    def times_from(self, rng: random.Random, start: float = 0.0,
                   until: float = math.inf) -> Iterator[float]:
        """Arrival times after ``start``, in order, drawn with ``rng``.

        Endless unless recorded, or a rate that is zero from some time on; the caller
        stops reading at its horizon, but thinning must be told ``until`` too (below).
        """
        if self.kind == "recorded":
            yield from (t for t in self.times if t >= start)
            return
        if self.kind == "poisson":
            if self.rate <= 0:
                return
            t, expovariate, rate = start, rng.expovariate, self.rate
            while True:
                t += expovariate(rate)
                yield t
        top = self.max_rate if self.kind == "function" else max(r for _, r in self.segments)
        if top <= 0:
            return
        # Thinning yields nothing while the rate is zero, so past the horizon, or past a
        # last segment whose rate is zero, the loop would spin forever between two
        # yields: stop there instead.
        stop = until
        if self.kind == "piecewise" and self.segments[-1][1] == 0:
            stop = min(stop, self.segments[-1][0])
        t, expovariate, uniform = start, rng.expovariate, rng.random
        rate_at = self.rate_at
        while True:
            t += expovariate(top)
            if t > stop:
                return
            # Thinning: keep the proposal with probability rate(t) / top.
            if uniform() * top < rate_at(t):
                yield t

    # -- JSON -----------------------------------------------------------------------

    def to_dict(self) -> dict:
        if self.kind == "poisson":
            return {"poisson": self.rate}
        if self.kind == "piecewise":
            return {"piecewise": [list(seg) for seg in self.segments]}
        if self.kind == "recorded":
            return {"recorded": list(self.times)}
        raise ValueError("a rate function cannot be written as JSON")

    @classmethod
    def from_dict(cls, data) -> "Arrivals":
        """``{"poisson": 2}``, ``{"piecewise": [[0, 2], [600, 6], [1200, 2]]}``,
        ``{"recorded": [...]}``."""
        if isinstance(data, Arrivals):
            return data
        if isinstance(data, dict) and len(data) == 1:
            (kind, value), = data.items()
            if kind == "poisson":
                return cls.poisson(value)
            if kind == "piecewise":
                return cls.piecewise(value)
            if kind == "recorded":
                return cls.recorded(value)
            if kind == "replay":  # the name before "recorded", in scenario.json files of old
                raise ValueError('arrivals {"replay": [...]} are now called {"recorded": [...]}: '
                                 "rename the key, the times are read the same")
        raise ValueError(f"cannot read arrivals from {data!r}: expected "
                         '{"poisson": RATE}, {"piecewise": [[START, RATE], ...]} '
                         'or {"recorded": [T, ...]}')
