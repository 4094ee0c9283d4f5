"""Scenarios: the whole experiment written down, so anyone can rerun it.

A scenario is the recipe of a fire drill: who sends work and how fast
(producers and their arrival processes), what work (the task mix: types,
priorities, shares, how long each takes), who does it (workers, how often
an attempt fails, how often a worker crashes and how long it takes to come
back), the queue's settings (retries, backoff, lease, capacity), and how
long to watch (duration, warm-up, seed). The same scenario and seed give
the same run, row for row.

Presets (``PRESETS``) are the lesson's situations; ``Scenario.from_dict``
reads one from JSON, with any field of a preset overridden.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from queue_system.backoff import Backoff
from queue_system.task import PRIORITIES

from .arrivals import Arrivals
from .distributions import Dist


@dataclass(frozen=True)
class TaskKind:
    """One line of the task mix: ``share`` of a producer's tasks are of this type."""

    type: str = "task"
    priority: str = "normal"
    share: float = 1.0
    service: Dist = Dist.exponential(1.0)
    delay: Dist = Dist.fixed(0.0)  # scheduled this far ahead of submission (execute_at)

    def __post_init__(self):
        if self.priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}")
        if not self.share > 0:
            raise ValueError("a task kind's share must be positive")

    def to_dict(self) -> dict:
        return {"type": self.type, "priority": self.priority, "share": self.share,
                "service": self.service.to_dict(), "delay": self.delay.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> "TaskKind":
        data = dict(data)
        for key in ("service", "delay"):
            if key in data:
                data[key] = Dist.from_dict(data[key])
        return cls(**data)


@dataclass(frozen=True)
class Producer:
    """A source of tasks (a web front end, a cron job...) with its own pace and mix."""

    name: str = "producer"
    arrivals: Arrivals = Arrivals.poisson(1.0)
    mix: Tuple[TaskKind, ...] = (TaskKind(),)

    def __post_init__(self):
        if not self.mix:
            raise ValueError(f"producer {self.name!r} has an empty task mix")

    def to_dict(self) -> dict:
        return {"name": self.name, "arrivals": self.arrivals.to_dict(),
                "mix": [k.to_dict() for k in self.mix]}

    @classmethod
    def from_dict(cls, data: dict) -> "Producer":
        data = dict(data)
        if "arrivals" in data:
            data["arrivals"] = Arrivals.from_dict(data["arrivals"])
        if "mix" in data:
            data["mix"] = tuple(k if isinstance(k, TaskKind) else TaskKind.from_dict(k)
                                for k in data["mix"])
        return cls(**data)


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
    duration: float = 3600.0        # arrivals stop then; None: run until max_tasks are done
    max_tasks: Optional[int] = None  # stop arrivals after this many tasks
    warmup: float = 0.0             # summary figures ignore what happens before this
    sample_every: Optional[float] = None  # time-series step; None: about 2000 samples
    seed: int = 1

    def __post_init__(self):
        if not self.producers:
            raise ValueError("a scenario needs at least one producer")
        if self.workers < 1:
            raise ValueError("a scenario needs at least one worker")
        if not 0 <= self.failure_p <= 1:
            raise ValueError("failure_p is a probability, between 0 and 1")
        if self.crash_rate < 0 or self.restart_delay < 0:
            raise ValueError("crash_rate and restart_delay cannot be negative")
        if self.duration is None and self.max_tasks is None:
            raise ValueError("give a duration, a max_tasks, or both: the run must end")
        if self.duration is not None and not 0 <= self.warmup < self.duration:
            raise ValueError("warmup must be shorter than the duration")
        if self.capacity is not None and self.capacity < 0:
            raise ValueError("capacity cannot be negative")
        if self.sample_every is not None and not self.sample_every > 0:
            raise ValueError("sample_every must be positive")

    # -- derived figures ------------------------------------------------------------

    def kinds(self) -> Tuple[TaskKind, ...]:
        """Every task kind of every producer, in a fixed order (the index used in records)."""
        return tuple(kind for p in self.producers for kind in p.mix)

    def arrival_rate(self, start: float = 0.0, end: Optional[float] = None) -> float:
        """Total tasks per second offered by all producers, averaged over [start, end]."""
        end = self.duration if end is None else end
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
        data = dict(data)
        base = preset(data.pop("preset")) if "preset" in data else cls()
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown scenario field(s): {', '.join(sorted(unknown))}")
        if "producers" in data:
            data["producers"] = tuple(p if isinstance(p, Producer) else Producer.from_dict(p)
                                      for p in data["producers"])
        if "backoff" in data and not isinstance(data["backoff"], Backoff):
            b = data["backoff"]
            data["backoff"] = Backoff.parse(b) if isinstance(b, str) else Backoff(**b)
        return dataclasses.replace(base, **data)

    @classmethod
    def from_json(cls, text: str) -> "Scenario":
        return cls.from_dict(json.loads(text))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


# -- the lesson's presets ------------------------------------------------------------------

LESSON_SERVICE = Dist.uniform(1.0, 3.0)  # "a task takes between 1 and 3 seconds"


def mmc(lam: float, mu: float = 1.0, c: int = 1, **changes) -> Scenario:
    """The textbook M/M/c queue: Poisson arrivals at ``lam``, exponential service at ``mu``."""
    base = Scenario(name=f"M/M/{c}", description=f"M/M/{c}, lambda={lam:g}/s, mu={mu:g}/s",
                    producers=(Producer("poisson", Arrivals.poisson(lam),
                                        (TaskKind("task", "normal", 1.0, Dist.exponential(1 / mu)),)),),
                    workers=c, lease_seconds=3600.0)
    return base.replace(**changes)


PRESETS: Dict[str, Scenario] = {
    "steady": Scenario(
        name="steady",
        description="An ordinary hour: 1.2 tasks/s, the lesson's 1-3 s tasks, 3 workers (80% busy).",
        producers=(Producer("web", Arrivals.poisson(1.2), (TaskKind("email", "normal", 1.0, LESSON_SERVICE),)),),
        workers=3, duration=3600.0, warmup=300.0),
    "spike": Scenario(
        name="spike",
        description="A traffic spike: 1 task/s, then 2.5 tasks/s for 10 minutes, then 1 task/s again; "
                    "4 workers keep up outside the spike but not during it.",
        producers=(Producer("web", Arrivals.piecewise([(0, 1.0), (1200, 2.5), (1800, 1.0)]),
                            (TaskKind("email", "normal", 1.0, LESSON_SERVICE),)),),
        workers=4, duration=3600.0, warmup=0.0),
    "worker-crash": Scenario(
        name="worker-crash",
        description="The lesson's failures: 20% of attempts fail (3 attempts at most, exponential "
                    "backoff), and each worker crashes about every 10 minutes, back after 30 s; "
                    "the 30 s lease brings a crashed worker's task back.",
        producers=(Producer("web", Arrivals.poisson(1.0), (TaskKind("email", "normal", 1.0, LESSON_SERVICE),)),),
        workers=4, failure_p=0.2, crash_rate=1 / 600, restart_delay=30.0, lease_seconds=30.0,
        max_retries=3, backoff=Backoff("exponential", base=1.0, max_delay=60.0),
        duration=3600.0, warmup=300.0),
    "priorities": Scenario(
        name="priorities",
        description="High, normal and low priority tasks (20/50/30%) sharing 3 busy workers (90%).",
        producers=(Producer("app", Arrivals.poisson(1.35), (
            TaskKind("payment", "high", 0.2, LESSON_SERVICE),
            TaskKind("email", "normal", 0.5, LESSON_SERVICE),
            TaskKind("report", "low", 0.3, LESSON_SERVICE))),),
        workers=3, duration=3600.0, warmup=300.0),
    "scheduled": Scenario(
        name="scheduled",
        description="Half of the tasks are scheduled 1 to 5 minutes ahead (execute_at), "
                    "half run as soon as possible.",
        producers=(Producer("app", Arrivals.poisson(1.0), (
            TaskKind("reminder", "normal", 0.5, LESSON_SERVICE, Dist.uniform(60, 300)),
            TaskKind("email", "normal", 0.5, LESSON_SERVICE))),),
        workers=3, duration=3600.0, warmup=300.0),
    "overload": Scenario(
        name="overload",
        description="More work than the workers can do (3 tasks/s for 2 workers) with a queue "
                    "capped at 100: the excess is refused.",
        producers=(Producer("web", Arrivals.poisson(3.0), (TaskKind("email", "normal", 1.0, LESSON_SERVICE),)),),
        workers=2, capacity=100, duration=1800.0, warmup=0.0),
}


def preset(name: str) -> Scenario:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"no preset {name!r}; presets: {', '.join(PRESETS)}") from None
