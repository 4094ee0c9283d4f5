"""The queue's refusals, each with a message a student can act on.

The HTTP API maps them to status codes: ``InvalidTask`` 400,
``TaskNotFound`` 404, ``TaskConflict`` 409, ``QueueFull`` and
``StoreUnavailable`` 503, ``StoreFull`` 507, the last three with a
``Retry-After``.
"""


class QueueError(Exception):
    """Base class: something the queue refused to do, and why."""

    status_code = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidTask(QueueError):
    """The request describes no valid task (bad type, priority, times...)."""

    status_code = 400


class TaskNotFound(QueueError):
    """No task has this id."""

    status_code = 404


class TaskConflict(QueueError):
    """The task is not in a state that allows this (stale lease, not in progress)."""

    status_code = 409


class ConcurrentUpdate(TaskConflict):
    """Another writer changed the task between our read and our write."""


class QueueFull(QueueError):
    """The queue holds as many waiting tasks as its capacity: come back later."""

    status_code = 503

    def __init__(self, message: str, retry_after: int = 5):
        super().__init__(message)
        self.retry_after = retry_after


class StoreFull(QueueError):
    """The store's disk is nearly full: new work is refused until space is freed."""

    status_code = 507

    def __init__(self, message: str, retry_after: int = 60):
        super().__init__(message)
        self.retry_after = retry_after


class StoreUnavailable(QueueError):
    """The store's engine failed (a locked or broken file, a lost connection): nothing
    of the operation was kept. Every store raises it for its engine's own errors, so
    the server answers them alike (503) whatever the engine."""

    status_code = 503

    def __init__(self, message: str, retry_after: int = 1):
        super().__init__(f"the store could not do this, nothing was saved: {message}")
        self.retry_after = retry_after
