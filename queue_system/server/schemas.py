"""The shapes of the HTTP API's requests and answers, for validation and /docs.

Strict: a string is not a number here, and an unknown field is an error
(a misspelt ``priorty`` would otherwise be silently ignored). Each rule the
API enforces on a field (lengths, ranges, formats) is written on the field,
so the OpenAPI document at ``/openapi.json`` states it; the queue's own
rules (``lifecycle``) still check values. The answers' models only document
the answers (the routes encode tasks themselves, faster); a test checks the
API against this document, answer by answer.
"""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Optional, Union

from fastapi import Query
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from typing_extensions import Annotated

from ..lifecycle import MAX_RETRIES_LIMIT, MAX_TYPE_LENGTH
from ..limits import DEFAULT_LIMITS, MAX_ID_LENGTH, Limits
from ..task import PRIORITIES, STATUSES

# The names the API accepts and shows: the task module's own. (At run time a Literal of a
# tuple is the Literal of its items, which is what pydantic and the OpenAPI schema see;
# a static type checker would want them spelled out.)
PriorityName = Literal[PRIORITIES]
StatusName = Literal[STATUSES]

# 9999-12-31T23:59:59Z: the last second ISO 8601 can write with four digits.
LAST_TIME = 253402300799.0
# execute_at as text: an RFC 3339 time (ISO 8601's usual form), such as
# 2026-11-28T09:00:00Z: date, time to the second, and its zone. Python alone would also
# take "11111111" (the year 1111), a week date or no zone at all; the API does not.
RFC_3339 = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
            r"([Zz]|[+-][0-9]{2}:[0-9]{2})$")
MAX_DELAY = 100 * 366 * 86400.0  # a century
MAX_TYPES = 100                  # task types one claim may name

TaskType = Annotated[str, Field(
    min_length=1, max_length=MAX_TYPE_LENGTH, pattern=r"[^\s\x1c-\x1f]",
    description="Which handler runs it: email, image, report... (not only spaces)")]
Identifier = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]


def _whole(value):
    # JSON has one kind of number: 3.0 is the integer 3 to JSON Schema, and to us.
    return int(value) if value.__class__ is float and value.is_integer() else value


WholeNumber = Annotated[int, BeforeValidator(_whole)]


DEPTH_RULE = (f"nested at most --max-depth levels ({DEFAULT_LIMITS.max_depth} unless the "
              "server says otherwise)")


def payload_field(what: str, default: Any):
    return Field(default, description=f"{what}: any JSON value, {DEPTH_RULE}")


class Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class LessonTaskIn(Body):
    """The lesson's ``POST /task``: a type and any JSON payload."""

    type: TaskType
    payload: Any = Field(default_factory=dict,
                         description=f"Any JSON value; {{}} by default, {DEPTH_RULE}")


class TaskIn(LessonTaskIn):
    """``POST /tasks``: a task with the queue's options."""

    # execute_at and delay say the same thing two ways: one of them, or neither.
    model_config = ConfigDict(json_schema_extra={"not": {
        "required": ["execute_at", "delay"],
        "properties": {"execute_at": {"not": {"type": "null"}},
                       "delay": {"not": {"type": "null"}}}}})

    priority: PriorityName = "normal"
    max_retries: WholeNumber = Field(3, ge=1, le=MAX_RETRIES_LIMIT,
                             description="A task whose failures reach this goes to the dead "
                                         "letter: 3 means at most 3 attempts")
    execute_at: Optional[Union[Annotated[float, Field(ge=0, le=LAST_TIME)],
                               Annotated[str, Field(json_schema_extra={"format": "date-time"})]]
                        ] = Field(
        None, description="Not handed out before: seconds since the epoch, or an RFC 3339 "
                          "time with its zone, such as 2026-11-28T09:00:00Z")
    delay: Optional[Annotated[float, Field(ge=0, le=MAX_DELAY)]] = Field(
        None, description="Or: seconds from now (not with execute_at)")
    idempotency_key: Optional[Identifier] = Field(
        None, description="Resending a task with the same key returns the first one (200)")


class TaskBatchIn(Body):
    tasks: List[TaskIn] = Field(min_length=1, max_length=1000)


def worker_bodies(limits: Limits):
    """The bodies whose bounds are the server's settings (``--max-claim``, ``--max-lease``)."""
    Lease = Annotated[float, Field(ge=1, le=limits.max_lease,
                                   description="Seconds, from 1 to the server's --max-lease")]

    class ClaimIn(Body):
        worker_id: Identifier
        types: Optional[List[TaskType]] = Field(None, max_length=MAX_TYPES,
                                                description="Only these task types")
        wait: float = Field(0, ge=0, le=60, description="Long poll: seconds to wait for a task")
        lease_seconds: Optional[Lease] = Field(None, description="Default: the server's --lease")
        max_tasks: WholeNumber = Field(1, ge=1, le=limits.max_claim,
                               description="At most the server's --max-claim")
        acks: List[AckIn] = Field(
            default_factory=list, max_length=1000,
            description="Outcomes of finished tasks, recorded before the claim (as "
                        "POST /tasks/ack): the answer is then a 200 with their results")

    class HeartbeatIn(LeaseIn):
        lease_seconds: Optional[Lease] = None

    return ClaimIn, HeartbeatIn


class LeaseIn(Body):
    lease_id: Identifier


class ReleaseIn(LeaseIn):
    started: bool = Field(False, description="Had the handler begun? Then the attempt "
                                             "still counts; no failure is counted either way")


class CompleteIn(LeaseIn):
    result: Any = payload_field("What the handler returned", None)


class FailIn(LeaseIn):
    error: Optional[str] = None


class AckIn(Body):
    """One finished attempt: ``ok`` with a result, or not ok with an error."""

    id: str
    lease_id: Identifier
    ok: bool
    result: Any = payload_field("What the handler returned", None)
    error: Optional[str] = None


class AckBatchIn(Body):
    acks: List[AckIn] = Field(min_length=1, max_length=1000)


class LessonCompleteIn(Body):
    result: Any = payload_field("What the handler returned", None)


class LessonFailIn(Body):
    error: Optional[str] = None


class PurgeIn(Body):
    older_than: float = Field(ge=0, le=MAX_DELAY,
                              description="Seconds since a task finished: older ones go")


# -- answers ------------------------------------------------------------------------------


class ErrorOut(BaseModel):
    error: str = Field(description="What is wrong, in a sentence")


class TaskOut(BaseModel):
    """A task with its whole record (``queue_system.task.Task``)."""

    id: str
    type: str
    payload: Any
    status: StatusName
    priority: PriorityName
    created_at: float
    execute_at: float
    retries: int
    max_retries: int
    attempts: int
    result: Any
    error: Optional[str]
    worker_id: Optional[str]
    lease_id: Optional[str]
    lease_expires_at: Optional[float]
    claimed_at: Optional[float]
    finished_at: Optional[float]
    updated_at: float
    idempotency_key: Optional[str]
    version: int
    seq: int = Field(description="Its place in the line of submissions: pending tasks of one "
                                 "priority, ready at the same time, are served in this order")


class StatsOut(BaseModel):
    scheduled: int
    pending: int
    processing: int
    completed: int
    failed: int
    dead_letter: int = Field(description="The same as failed")
    total: int


class LessonSubmitOut(BaseModel):
    taskId: str
    message: str
    stats: StatsOut


class TasksOut(BaseModel):
    tasks: List[TaskOut]


class TaskListOut(TasksOut):
    count: int


class LessonTaskOut(BaseModel):
    message: str
    task: TaskOut


class AckDone(BaseModel):
    id: str
    status: StatusName


class AckRefused(BaseModel):
    id: str
    error: str
    code: int = Field(description="The status this report alone would have had")


class AckOut(BaseModel):
    results: List[Union[AckDone, AckRefused]]


class ClaimOut(TasksOut):
    acks: Optional[List[Union[AckDone, AckRefused]]] = Field(
        None, description="Present when the claim carried acks: one result per ack")


class HealthOut(BaseModel):
    status: Literal["ok"]
    store: str
    tasks: int
    max_claim: int = Field(description="The most tasks one claim may take (--max-claim)")


class PurgeOut(BaseModel):
    deleted: int


# The statuses each kind of route may answer besides its success, for the OpenAPI document.
def _errors(**described: str) -> Dict[int, dict]:
    return {int(code[1:]): {"model": ErrorOut, "description": text}
            for code, text in described.items()}


EVERY_ROUTE = _errors(
    _401="A token is required (QUEUE_TOKEN) and this request has none, or a wrong one",
    _403="Refused: a foreign Origin or Host (a web page), or a token that may not do this",
    _408="The request did not arrive within --header-timeout or --body-timeout",
    _413="The body is larger than --max-body (a body sent with a GET counts too)",
    _431="The request's headers are larger than --max-header-bytes",
    _503="The store could not do this; nothing was saved")
WITH_BODY = _errors(
    _400="The body or a parameter is invalid; the message says which and why")
WITH_QUERY = _errors(_400="A parameter is invalid; the message says which and why")
SUBMITTING = _errors(
    _503="The store failed, or the queue is full (--capacity): see Retry-After",
    _507="The store's disk is nearly full (--min-free-disk): see Retry-After")
LEASED = _errors(_404="No task has this id",
                 _409="The lease is stale or expired, or the task is not in progress")
ONE_TASK = _errors(_404="No task has this id")
DEAD = _errors(_404="No task has this id", _409="The task is not in the dead letter",
               _503="The store failed, or the queue is full (--capacity): see Retry-After")
NO_TASK = {204: {"description": "No task was ready within the wait"}}
# The same, by what a route takes: the routers' building blocks.
BODY_ERRORS = {**EVERY_ROUTE, **WITH_BODY}
QUERY_ERRORS = {**EVERY_ROUTE, **WITH_QUERY}
SUBMIT_ERRORS = {**BODY_ERRORS, **SUBMITTING}
LEASE_ERRORS = {**BODY_ERRORS, **LEASED}
MAX_OFFSET = 10 ** 12  # a page's offset: far beyond any real queue, within SQLite's integers
# A page's cursor: the seq of the last task of the page before.
AFTER = Query(None, ge=0, le=2 ** 62, description="Only tasks after this one in line: the "
              "`seq` of the last task of the page before (a page then costs its own length, "
              "however deep; `offset` walks every task it skips)")
