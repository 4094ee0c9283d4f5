"""Workers: processes that claim tasks, run handlers and report back."""

from .handlers import SimulatedWork, lesson_handlers, load_handlers
from .worker import Worker

__all__ = ["Worker", "SimulatedWork", "lesson_handlers", "load_handlers"]
