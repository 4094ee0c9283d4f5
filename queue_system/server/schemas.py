"""The shapes of the HTTP API's request bodies, for validation and /docs.

Strict: a string is not a number here, and an unknown field is an error
(a misspelt ``priorty`` would otherwise be silently ignored). The queue's
own rules (``lifecycle``) still check values; these models check shapes.
"""

from __future__ import annotations

from typing import Any, List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

Priority = Literal["high", "normal", "low"]


class Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class SeedTaskIn(Body):
    """The lesson's ``POST /task``: a type and any JSON payload."""

    type: str = Field(description="Which handler runs it: email, image, report...")
    payload: Any = Field(default_factory=dict, description="Any JSON value; {} by default")


class TaskIn(SeedTaskIn):
    """``POST /tasks``: a task with the queue's options."""

    priority: Priority = "normal"
    max_retries: int = Field(3, description="A task whose failures reach this goes to the dead "
                                            "letter: 3 means at most 3 attempts")
    execute_at: Optional[Union[float, str]] = Field(
        None, description="Not handed out before: seconds since the epoch, or ISO 8601")
    delay: Optional[float] = Field(None, description="Or: seconds from now")
    idempotency_key: Optional[str] = Field(
        None, description="Resending a task with the same key returns the first one")


class TaskBatchIn(Body):
    tasks: List[TaskIn] = Field(min_length=1, max_length=1000)


class ClaimIn(Body):
    worker_id: str = Field(min_length=1, max_length=200)
    types: Optional[List[str]] = Field(None, description="Only these task types")
    wait: float = Field(0, ge=0, le=60, description="Long poll: seconds to wait for a task")
    lease_seconds: Optional[float] = Field(None, gt=0, description="Default: the server's")
    max_tasks: int = Field(1, ge=1, le=1000)


class LeaseIn(Body):
    lease_id: str


class ReleaseIn(LeaseIn):
    started: bool = Field(False, description="Had the handler begun? Then the attempt "
                                             "still counts; no failure is counted either way")


class HeartbeatIn(LeaseIn):
    lease_seconds: Optional[float] = Field(None, gt=0)


class CompleteIn(LeaseIn):
    result: Any = None


class FailIn(LeaseIn):
    error: Optional[str] = None


class AckIn(Body):
    """One finished attempt: ``ok`` with a result, or not ok with an error."""

    id: str
    lease_id: str
    ok: bool
    result: Any = None
    error: Optional[str] = None


class AckBatchIn(Body):
    acks: List[AckIn] = Field(min_length=1, max_length=1000)


class SeedCompleteIn(Body):
    result: Any = None


class SeedFailIn(Body):
    error: Optional[str] = None
