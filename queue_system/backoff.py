"""Backoff: how long a failed task waits before its next attempt.

Retrying at once hammers whatever made the task fail (a full disk, a
rate-limited mail server). A backoff policy spaces the attempts out:
``none`` retries at once, ``fixed`` waits the same delay each time, and
``exponential`` doubles the delay after each failure up to a cap, with
random jitter so that tasks that failed together do not retry together.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

KINDS = ("none", "fixed", "exponential")


@dataclass(frozen=True)
class Backoff:
    """A validated backoff policy; ``delay(retries, rng)`` gives seconds."""

    kind: str = "exponential"
    base: float = 1.0        # first delay (fixed: every delay), in seconds
    factor: float = 2.0      # exponential growth per failure
    max_delay: float = 60.0  # cap, in seconds
    jitter: float = 0.5      # exponential: the delay is drawn in [(1-jitter)d, d]

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"backoff kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if not all(math.isfinite(v) for v in (self.base, self.factor, self.max_delay, self.jitter)):
            raise ValueError("backoff numbers must be finite")
        if self.base < 0 or self.max_delay < 0:
            raise ValueError("backoff delays cannot be negative")
        if self.factor < 1:
            raise ValueError("backoff factor must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("backoff jitter must be between 0 and 1")

    def delay(self, retries: int, rng: random.Random) -> float:
        """Seconds to wait before the attempt after failure number ``retries`` (1, 2, ...)."""
        if self.kind == "none":
            return 0.0
        if self.kind == "fixed":
            return self.base
        ceiling = min(self.max_delay, self.base * self.factor ** max(retries - 1, 0))
        return ceiling * (1.0 - self.jitter * rng.random())

    @classmethod
    def parse(cls, text: str) -> "Backoff":
        """Read a policy from a command-line word: ``none``, ``fixed:2``, ``exponential:1:60``."""
        kind, *numbers = text.split(":")
        try:
            values = [float(n) for n in numbers]
        except ValueError:
            raise ValueError(f"backoff {text!r}: the numbers after the kind must be seconds") from None
        if kind == "fixed" and len(values) <= 1:
            return cls(kind, *values[:1])
        if kind == "exponential" and len(values) <= 2:
            return cls(kind, *(values[:1] or [1.0]), max_delay=values[1] if len(values) > 1 else 60.0)
        if kind == "none" and not values:
            return cls("none")
        raise ValueError(f"backoff {text!r}: expected none, fixed:SECONDS or exponential:BASE:MAX")


NO_BACKOFF = Backoff("none")
