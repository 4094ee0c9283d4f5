"""Handlers: what a worker does with each type of task.

A handler is a function ``handler(task) -> result``: it returns a JSON
value on success and raises on failure. The lesson's ``email``, ``image``
and ``report`` handlers (and the default one) only *pretend* to work: they
sleep for a random time (1 to 3 s in the lesson) and fail at random (20%
of attempts), which is exactly what a classroom needs to watch retries and
the dead letter happen. Both are settings, so tests and demos can run fast.
"""

from __future__ import annotations

import importlib
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional

from ..task import Task

Handler = Callable[[Task], Any]


class SimulatedFailure(Exception):
    """The random failure the lesson's workers throw."""


def _field(payload: Any, name: str) -> Any:
    return payload.get(name) if isinstance(payload, dict) else None


# What each built-in task type "produces", as in the lesson.
RESULTS: Dict[Optional[str], Callable[[Task], Any]] = {
    "email": lambda task: {"sent": True, "to": _field(task.payload, "to")},
    "image": lambda task: {"processed": True, "url": _field(task.payload, "url")},
    "report": lambda task: {"generated": True, "format": "pdf"},
    None: lambda task: {"result": "processed"},
}


@dataclass
class SimulatedWork:
    """Sleep ``min_seconds``..``max_seconds``, fail with ``failure_rate``, else give a result.

    With a ``seed``, an attempt's work time and outcome depend only on the seed,
    the task's type and payload, and its attempt number: whichever worker takes
    whichever task, a run plays out the same, which is what a lab or a test needs
    to show the same retries each time. Without one, every draw is fresh.
    """

    min_seconds: float = 1.0
    max_seconds: float = 3.0
    failure_rate: float = 0.2
    seed: Optional[int] = None
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self):
        if not 0 <= self.min_seconds <= self.max_seconds:
            raise ValueError("work time: need 0 <= min <= max seconds")
        if not 0 <= self.failure_rate <= 1:
            raise ValueError("failure rate must be between 0 and 1")
        self._rng = random.Random(self.seed)

    def __call__(self, task: Task) -> Any:
        if self.seed is not None:
            # A str seed is hashed with SHA-512: the same on every machine and run.
            rng = random.Random(f"{self.seed}:{task.type}:{json.dumps(task.payload, sort_keys=True)}"
                                f":{task.attempts}")
            seconds = rng.uniform(self.min_seconds, self.max_seconds)
            fails = rng.random() < self.failure_rate
        else:
            with self._lock:  # one generator shared by the worker's threads
                seconds = self._rng.uniform(self.min_seconds, self.max_seconds)
                fails = self._rng.random() < self.failure_rate
        if seconds:
            time.sleep(seconds)
        if fails:
            raise SimulatedFailure("Random processing error")
        return RESULTS.get(task.type, RESULTS[None])(task)


def lesson_handlers(work: SimulatedWork) -> Dict[Optional[str], Handler]:
    """The lesson's handlers: every type (``None`` is the default) runs the simulated work."""
    return {name: work for name in RESULTS}


DEFAULT_NAME = "HANDLERS"  # what ``--handlers MODULE`` looks for in the module


def load_handlers(spec: str) -> Dict[Optional[str], Handler]:
    """Your own handlers, named ``MODULE`` or ``MODULE:NAME`` (as uvicorn names an app).

    ``MODULE`` alone means its ``HANDLERS``, as Celery and RQ workers import the
    task functions of a module: ``--handlers myapp.tasks``. ``NAME`` is a dict
    from task type to handler (the key ``None`` handles every other type) or
    one function that handles every type. ``MODULE`` (``package.module`` if
    it is in a package) is imported from the worker's Python path (its
    working folder, and ``PYTHONPATH``). Raises ``ValueError`` saying what is
    wrong.
    """
    module_name, colon, name = spec.partition(":")
    if not colon:
        name = DEFAULT_NAME
    if not module_name or not name or module_name.startswith(".") \
            or not all(part.isidentifier() for part in module_name.split(".")):
        raise ValueError(f"handlers must be given as MODULE or MODULE:NAME, such as tasks or "
                         f"tasks:HANDLERS, not {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import the handlers' module {module_name!r}: {exc}") from None
    except Exception as exc:  # a syntax error in it, or its own code raising while imported
        raise ValueError(f"importing the handlers' module {module_name!r} failed: "
                         f"{type(exc).__name__}: {exc}") from None
    try:
        found = getattr(module, name)
    except AttributeError:
        if not colon:
            raise ValueError(f"module {module_name!r} defines no handlers: give it a HANDLERS "
                             "dict from task type to function, or name one: MODULE:NAME") from None
        raise ValueError(f"module {module_name!r} has no {name!r}") from None
    if callable(found):
        return {None: found}
    if not isinstance(found, dict) or not found:
        raise ValueError(f"{spec} must be a function, or a non-empty dict from task type to "
                         f"function, not {type(found).__name__}")
    for key, handler in found.items():
        if key is not None and not isinstance(key, str):
            raise ValueError(f"{spec}: the key {key!r} is not a task type (a string, or None "
                             "for every other type)")
        if not callable(handler):
            raise ValueError(f"{spec}: the handler for {key!r} is not a function but "
                             f"{type(handler).__name__}")
    return dict(found)
