"""Random durations: how long a task takes, how far ahead it is scheduled.

A barista does not take exactly two minutes per coffee: some orders are
quick, some are slow. The lesson says a task takes "between 1 and 3
seconds" (uniform); queueing theory likes the exponential (memoryless:
M/M/c); a batch job may take a fixed time. ``Dist`` names one of these and
draws values from a ``random.Random``, so a seed reproduces a run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from .checks import is_number, number

KINDS = ("exponential", "uniform", "fixed")
A_NAMES = {"exponential": "the mean", "uniform": "low", "fixed": "the value"}  # for messages


@dataclass(frozen=True)
class Dist:
    """A distribution of non-negative durations in seconds.

    ``Dist.exponential(mean)``, ``Dist.uniform(low, high)``, ``Dist.fixed(value)``.
    """

    kind: str = "fixed"
    a: float = 0.0   # exponential: mean; uniform: low; fixed: the value
    b: float = 0.0   # uniform: high (unused otherwise)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"distribution must be one of {', '.join(KINDS)}, not {self.kind!r}")
        number(f"{self.kind}: {A_NAMES[self.kind]}", self.a, low=0)
        number(f"{self.kind}: high", self.b, low=0)
        if self.kind == "uniform" and self.b < self.a:
            raise ValueError("uniform: high must be at least low")
        if self.kind == "exponential" and self.a <= 0:
            raise ValueError("exponential: the mean must be positive")

    # The constructors store floats; ``number`` first, as float() would turn "2" or
    # True into a number and hide the typo.

    @classmethod
    def exponential(cls, mean: float) -> "Dist":
        return cls("exponential", number("exponential: the mean", mean))

    @classmethod
    def uniform(cls, low: float, high: float) -> "Dist":
        return cls("uniform", number("uniform: low", low), number("uniform: high", high))

    @classmethod
    def fixed(cls, value: float) -> "Dist":
        return cls("fixed", number("fixed: the value", value))

    @property
    def mean(self) -> float:
        if self.kind == "uniform":
            return (self.a + self.b) / 2
        return self.a

    @property
    def scv(self) -> float:
        """Squared coefficient of variation (variance / mean**2): 1 for exponential."""
        if self.mean == 0:
            return 0.0
        if self.kind == "exponential":
            return 1.0
        if self.kind == "uniform":
            return ((self.b - self.a) ** 2 / 12) / self.mean ** 2
        return 0.0

    def sampler(self, rng: random.Random) -> Callable[[], float]:
        """A zero-argument function drawing from this distribution.

        Made once per run so the simulation's inner loop is a single call
        (no branching on the kind for each of hundreds of thousands of tasks).
        """
        if self.kind == "exponential":
            expovariate, rate = rng.expovariate, 1.0 / self.a
            return lambda: expovariate(rate)
        if self.kind == "uniform":
            uniform, low, high = rng.uniform, self.a, self.b
            return lambda: uniform(low, high)
        value = self.a
        return lambda: value

    def to_dict(self) -> dict:
        if self.kind == "exponential":
            return {"exponential": self.a}
        if self.kind == "uniform":
            return {"uniform": [self.a, self.b]}
        return {"fixed": self.a}

    @classmethod
    def from_dict(cls, data) -> "Dist":
        """``{"exponential": 2}``, ``{"uniform": [1, 3]}``, ``{"fixed": 5}``, or a bare number (fixed)."""
        if isinstance(data, Dist):
            return data
        if is_number(data):
            return cls.fixed(data)
        if isinstance(data, dict) and len(data) == 1:
            (kind, value), = data.items()
            if kind == "exponential":
                return cls.exponential(value)
            if kind == "uniform" and isinstance(value, (list, tuple)) and len(value) == 2:
                return cls.uniform(*value)
            if kind == "fixed":
                return cls.fixed(value)
        raise ValueError(f"cannot read a distribution from {data!r}: expected "
                         '{"exponential": MEAN}, {"uniform": [LOW, HIGH]} or {"fixed": VALUE}')
