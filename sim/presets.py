"""The lesson's situations, ready to run: ``preset("spike")``, and the textbook M/M/c.

Each preset is a ``Scenario`` (see ``scenario``) with the lesson's task, "it
takes between 1 and 3 seconds", in a situation a class meets: an ordinary
hour, a traffic spike, failing and crashing workers, priorities, scheduled
tasks, and more work than the workers can do. ``mmc_scenario`` builds the
queue the formulas of ``theory`` describe, to check the model against them.
A new preset is one more entry in ``PRESETS``; ``python -m sim scenarios``
lists them.
"""

from __future__ import annotations

from typing import Dict

from queue_system.backoff import Backoff

from .arrivals import Arrivals
from .distributions import Dist
from .scenario import Producer, Scenario, TaskKind

LESSON_SERVICE = Dist.uniform(1.0, 3.0)  # "a task takes between 1 and 3 seconds"
EMAILS = (TaskKind("email", "normal", 1.0, LESSON_SERVICE),)  # the lesson's one kind of task


def mmc_scenario(lam: float, mu: float = 1.0, c: int = 1, **changes) -> Scenario:
    """The textbook M/M/c queue: Poisson arrivals at ``lam``, exponential service at ``mu``."""
    base = Scenario(name=f"M/M/{c}", description=f"M/M/{c}, lambda={lam:g}/s, mu={mu:g}/s",
                    producers=(Producer("poisson", Arrivals.poisson(lam), (
                        TaskKind("task", "normal", 1.0, Dist.exponential(1 / mu)),)),),
                    workers=c, lease_seconds=3600.0)
    return base.replace(**changes)


PRESETS: Dict[str, Scenario] = {
    "steady": Scenario(
        name="steady",
        description="An ordinary hour: 1.2 tasks/s, the lesson's 1-3 s tasks, "
                    "3 workers (80% busy).",
        producers=(Producer("web", Arrivals.poisson(1.2), EMAILS),),
        workers=3, duration=3600.0, warmup=300.0),
    "spike": Scenario(
        name="spike",
        description="A traffic spike: 1 task/s, then 2.5 tasks/s for 10 minutes, then 1 task/s "
                    "again; 4 workers keep up outside the spike but not during it.",
        producers=(Producer("web", Arrivals.piecewise([(0, 1.0), (1200, 2.5), (1800, 1.0)]),
                            EMAILS),),
        workers=4, duration=3600.0, warmup=0.0),
    "worker-crash": Scenario(
        name="worker-crash",
        description="The lesson's failures: 20% of attempts fail (3 attempts at most, exponential "
                    "backoff), and each worker crashes about every 10 minutes, back after 30 s; "
                    "the 30 s lease brings a crashed worker's task back.",
        producers=(Producer("web", Arrivals.poisson(1.0), EMAILS),),
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
        producers=(Producer("web", Arrivals.poisson(3.0), EMAILS),),
        workers=2, capacity=100, duration=1800.0, warmup=0.0),
}


def preset(name: str) -> Scenario:
    """The preset called ``name`` (ValueError, naming them all, if there is none)."""
    # Looked up with ``in``, not PRESETS[name]: a JSON list as a name would be unhashable.
    if not isinstance(name, str) or name not in PRESETS:
        raise ValueError(f"no preset {name!r}; presets: {', '.join(PRESETS)}")
    return PRESETS[name]
