"""Scenarios: the whole experiment written down, so anyone can rerun it.

A scenario is the recipe of a fire drill: who sends work and how fast
(producers and their arrival processes), what work (the task mix: types,
priorities, shares, how long each takes), who does it (workers, how often
an attempt fails, how often a worker crashes and how long it takes to come
back), the queue's settings (retries, backoff, lease, capacity), and how
long to watch (duration, warm-up, seed). The same scenario and seed give
the same run, row for row.

``Scenario.from_dict`` reads one from JSON, starting from one of the
lesson's situations (``presets``) with any field overridden.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from queue_system.backoff import Backoff
from queue_system.lifecycle import MAX_RETRIES_LIMIT, MAX_TYPE_LENGTH
from queue_system.queue import MAX_LEASE_SECONDS, MIN_LEASE_SECONDS
from queue_system.task import PRIORITIES

from .arrivals import Arrivals
from .checks import inside, mapping, number, sequence, text, whole
from .distributions import Dist

# Upper bounds that keep a run finite and within memory. Each refusal says which
# bound, so a student who really wants more knows what to change.
MAX_WORKERS = 10_000          # the records keep a worker's number in 2 bytes (up to 65,535)
MAX_TASKS = 10_000_000        # about 2 GB of records, and minutes of simulation
MAX_SAMPLES = 1_000_000       # time-series rows: duration / sample_every
MAX_CRASHES = 10_000_000      # expected worker crashes in a run: workers * crash_rate * duration


@dataclass(frozen=True)
class TaskKind:
    """One line of the task mix: ``share`` of a producer's tasks are of this type."""

    type: str = "task"
    priority: str = "normal"
    share: float = 1.0
    service: Dist = Dist.exponential(1.0)
    delay: Dist = Dist.fixed(0.0)  # scheduled this far ahead of submission (execute_at)

    def __post_init__(self):
        # The queue refuses such a type at the first submission, mid-run: refuse it now.
        if not isinstance(self.type, str) or not self.type.strip() or len(self.type) > MAX_TYPE_LENGTH:
            raise ValueError(f"type must be a non-empty string of at most {MAX_TYPE_LENGTH} "
                             f"characters, not {self.type!r}")
        if self.priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}, not {self.priority!r}")
        number("share", self.share, above=0)
        for name in ("service", "delay"):
            if not isinstance(getattr(self, name), Dist):
                raise ValueError(f"{name} must be a Dist, not {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        return {"type": self.type, "priority": self.priority, "share": self.share,
                "service": self.service.to_dict(), "delay": self.delay.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> "TaskKind":
        data = mapping("a task kind", data, [f.name for f in dataclasses.fields(cls)])
        for key in ("service", "delay"):
            if key in data:
                try:
                    data[key] = Dist.from_dict(data[key])
                except ValueError as e:
                    raise inside(key, e) from None
        return cls(**data)


@dataclass(frozen=True)
class Producer:
    """A source of tasks (a web front end, a cron job...) with its own pace and mix."""

    name: str = "producer"
    arrivals: Arrivals = Arrivals.poisson(1.0)
    mix: Tuple[TaskKind, ...] = (TaskKind(),)

    def __post_init__(self):
        text("a producer's name", self.name)
        if not isinstance(self.arrivals, Arrivals):
            raise ValueError(f"arrivals must be an Arrivals, not {self.arrivals!r}")
        if not self.mix:
            raise ValueError(f"producer {self.name!r} has an empty task mix")
        if not all(isinstance(kind, TaskKind) for kind in self.mix):
            raise ValueError(f"producer {self.name!r}: the mix must hold TaskKinds")

    def to_dict(self) -> dict:
        return {"name": self.name, "arrivals": self.arrivals.to_dict(),
                "mix": [k.to_dict() for k in self.mix]}

    @classmethod
    def from_dict(cls, data: dict) -> "Producer":
        data = mapping("a producer", data, [f.name for f in dataclasses.fields(cls)])
        if "arrivals" in data:
            try:
                data["arrivals"] = Arrivals.from_dict(data["arrivals"])
            except ValueError as e:
                raise inside("arrivals", e) from None
        if "mix" in data:
            data["mix"] = tuple(_each("mix", data["mix"], TaskKind))
        return cls(**data)


def _each(where: str, items, kind):
    """Read a JSON array of ``kind`` (objects, or ready-made ones), naming a bad item's place."""
    for i, item in enumerate(sequence(where, items)):
        try:
            yield item if isinstance(item, kind) else kind.from_dict(item)
        except ValueError as e:
            raise inside(f"{where}[{i}]", e) from None


@dataclass(frozen=True)
class Scenario:
    """Everything one simulation run needs. Times in seconds, rates per second."""

    name: str = "custom"
    description: str = ""
    producers: Tuple[Producer, ...] = (Producer(),)
    workers: int = 1
    failure_p: float = 0.0          # probability that one attempt fails
    crash_rate: float = 0.0         # crashes per second per working worker (1/MTBF)
    restart_delay: float = 30.0     # seconds a crashed worker stays down
    lease_seconds: float = 30.0     # a crashed worker's task comes back this long after its claim
    max_retries: int = 3            # failures before the dead letter (= most attempts)
    backoff: Backoff = Backoff("none")
    capacity: Optional[int] = None  # most tasks waiting; beyond it a submission is refused
    # Seconds from a worker's claim to the start of what it claimed: the HTTP round trip
    # of a live worker (its report rides on it). 0: the textbook's worker, which starts at
    # once. ``sim live`` measures it and predicts with it (see ``verify``).
    claim_seconds: float = 0.0
    duration: float = 3600.0        # arrivals stop then; None: run until max_tasks are done
    max_tasks: Optional[int] = None  # stop arrivals after this many tasks
    warmup: float = 0.0             # summary figures ignore what happens before this
    # Time-series step; None: about 2000 samples, or every 10 s without a duration.
    # At most MAX_SAMPLES samples: without a duration the series stops after that many.
    sample_every: Optional[float] = None
    seed: int = 1

    def __post_init__(self):
        self._check_fields()
        self._check_run_length()

    def _check_fields(self) -> None:
        """Each field on its own: its type and its range, refused with its name."""
        text("name", self.name)
        text("description", self.description)
        if not self.producers:
            raise ValueError("a scenario needs at least one producer")
        if not all(isinstance(p, Producer) for p in self.producers):
            raise ValueError("producers must be Producer objects (Producer.from_dict reads JSON)")
        whole("workers", self.workers, low=1, high=MAX_WORKERS)
        number("failure_p (a probability)", self.failure_p, low=0, high=1)
        number("crash_rate", self.crash_rate, low=0)
        number("restart_delay", self.restart_delay, low=0)
        # The queue's own bounds: it would refuse the lease when the model builds it.
        number("lease_seconds", self.lease_seconds, low=MIN_LEASE_SECONDS, high=MAX_LEASE_SECONDS)
        whole("max_retries", self.max_retries, low=1, high=MAX_RETRIES_LIMIT)
        if not isinstance(self.backoff, Backoff):
            raise ValueError(f"backoff must be a Backoff, not {self.backoff!r}")
        if self.capacity is not None:
            whole("capacity", self.capacity, low=0)
        number("claim_seconds", self.claim_seconds, low=0)
        whole("seed", self.seed)

    def _check_run_length(self) -> None:
        """The run must end, and in a time and a memory that a laptop has."""
        if self.duration is None and self.max_tasks is None:
            raise ValueError("give a duration, a max_tasks, or both: the run must end")
        if self.duration is not None:
            number("duration", self.duration, above=0)
        if self.max_tasks is not None:
            whole("max_tasks", self.max_tasks, low=1, high=MAX_TASKS)
        number("warmup", self.warmup, low=0)
        if self.duration is not None and not self.warmup < self.duration:
            raise ValueError("warmup must be shorter than the duration")
        if self.sample_every is not None:
            number("sample_every", self.sample_every, above=0)
        if self.duration is None:
            return  # no horizon to count samples, tasks or crashes over (see Model._sampler)
        if self.sample_every is not None and self.duration / self.sample_every > MAX_SAMPLES:
            raise ValueError(f"sample_every={self.sample_every:g} s gives more than {MAX_SAMPLES:,} "
                             f"samples over {self.duration:g} s: make it at least "
                             f"{self.duration / MAX_SAMPLES:g} s")
        expected = sum(_expected_arrivals(p.arrivals, self.duration) for p in self.producers)
        if min(expected, self.max_tasks or math.inf) > MAX_TASKS:
            raise ValueError(f"about {expected:,.0f} tasks would arrive in {self.duration:g} s, "
                             f"more than the {MAX_TASKS:,} a run may hold: shorten the duration, "
                             "lower the rates or set max_tasks")
        crashes = self.workers * self.crash_rate * self.duration
        if crashes > MAX_CRASHES:
            raise ValueError(f"about {crashes:,.0f} worker crashes expected in {self.duration:g} s, "
                             f"more than {MAX_CRASHES:,}: lower crash_rate or the duration")

    # -- derived figures ------------------------------------------------------------

    def kinds(self) -> Tuple[TaskKind, ...]:
        """Every task kind of every producer, in a fixed order (the index used in records)."""
        return tuple(kind for p in self.producers for kind in p.mix)

    def constant_rate(self) -> bool:
        """Does every producer send at one steady rate (Poisson), whatever the horizon?"""
        return all(p.arrivals.kind == "poisson" for p in self.producers)

    def arrival_rate(self, start: float = 0.0, end: Optional[float] = None) -> float:
        """Total tasks per second offered by all producers, averaged over [start, end].

        ``end`` defaults to the duration. A run without one (it stops after
        ``max_tasks``) has no end to average over: its rate is known only when
        every producer's is constant.
        """
        end = self.duration if end is None else end
        if end is None:
            if not self.constant_rate():
                raise ValueError("a run without a duration has no average arrival rate "
                                 "unless every producer's rate is constant (poisson)")
            return sum(p.arrivals.rate for p in self.producers)
        return sum(p.arrivals.mean_rate(start, end) for p in self.producers)

    def mean_service(self) -> float:
        """Mean seconds per attempt, weighted by the arrival rates and shares."""
        total_rate, weighted = 0.0, 0.0
        for p in self.producers:
            rate = p.arrivals.mean_rate(0.0, self.duration or 1.0)
            shares = sum(k.share for k in p.mix)
            for k in p.mix:
                total_rate += rate * k.share / shares
                weighted += rate * k.share / shares * k.service.mean
        return weighted / total_rate if total_rate else 0.0

    def busy_windows(self):
        return sorted(w for p in self.producers for w in p.arrivals.busy_windows())

    def replace(self, **changes) -> "Scenario":
        return dataclasses.replace(self, **changes)

    # -- JSON ------------------------------------------------------------------------------

    def to_dict(self) -> Dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["producers"] = [p.to_dict() for p in self.producers]
        data["backoff"] = dataclasses.asdict(self.backoff)
        return data

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Scenario":
        """Read a scenario; ``"preset": "spike"`` starts from a preset and overrides its fields."""
        data = mapping("the scenario", data, ["preset"] + [f.name for f in dataclasses.fields(cls)])
        from .presets import preset  # the presets are Scenarios: imported once both exist
        base = preset(data.pop("preset")) if "preset" in data else cls()
        if "producers" in data:
            data["producers"] = tuple(_each("producers", data["producers"], Producer))
        if "backoff" in data:
            try:
                data["backoff"] = _read_backoff(data["backoff"])
            except ValueError as e:
                raise inside("backoff", e) from None
        return dataclasses.replace(base, **data)

    @classmethod
    def from_json(cls, text: str) -> "Scenario":
        return cls.from_dict(json.loads(text))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _expected_arrivals(arrivals: Arrivals, duration: float) -> float:
    """How many tasks ``arrivals`` sends in [0, duration], on average."""
    if arrivals.kind == "recorded":
        return sum(1 for t in arrivals.times if t <= duration)
    return arrivals.mean_rate(0.0, duration) * duration


BACKOFF_FIELDS = [f.name for f in dataclasses.fields(Backoff)]


def _read_backoff(value) -> Backoff:
    """``"exponential:1:60"``, or an object of Backoff's fields (checked here: Backoff
    itself, the live queue's, expects them already typed)."""
    if isinstance(value, Backoff):
        return value
    if isinstance(value, str):
        return Backoff.parse(value)
    data = mapping("a backoff", value, BACKOFF_FIELDS)
    for key, v in data.items():
        if key == "kind":
            text("kind", v)
        else:
            number(key, v)
    return Backoff(**data)
