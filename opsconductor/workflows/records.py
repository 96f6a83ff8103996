"""Writing run and scan records from workflow code: local activities with a bounded retry.

A record local activity is retried while PostgreSQL is briefly away, but not for ever: after
`RECORD_GIVE_UP` (or at once, for an error no retry can fix) it raises `RecordFailed`, which the
workflow turns into the run's failure, or which fails the workflow itself with the same reason.
Never an endless retry, never a failed workflow task.
"""

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    FailureError,
    TimeoutError,
)

A = TypeVar("A")
R = TypeVar("R")

# One attempt: a single statement or two against PostgreSQL.
RECORD_TIMEOUT = timedelta(seconds=30)
# All attempts together. Five minutes rides out a PostgreSQL restart or a managed database's
# failover (typically one to two minutes) with room to spare, yet a run whose records cannot be
# written fails within minutes, with the database's error as its reason, instead of staying
# `running` (and blocking its schedule's next fires) for ever.
RECORD_GIVE_UP = timedelta(minutes=5)
RECORD_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    # Errors about the data itself: the same statement fails the same way on every attempt.
    non_retryable_error_types=["DataError", "IntegrityError", "UnicodeEncodeError"],
)
RECORD_FAILED = "RecordFailed"


class RecordFailed(ApplicationError):
    """A record could not be written. An ApplicationError, so one that escapes a workflow fails
    that workflow (with this message) rather than its workflow task."""

    def __init__(self, message: str) -> None:
        super().__init__(message, type=RECORD_FAILED, non_retryable=True)


def _last_error(failure: BaseException | None) -> str:
    if isinstance(failure, TimeoutError):
        inner = failure.cause
        detail = f"; last error: {inner}" if inner is not None else ""
        return f"gave up after {RECORD_GIVE_UP}{detail}"
    if isinstance(failure, ApplicationError):
        return f"{failure.type}: {failure.message}" if failure.type else failure.message
    return str(failure)


async def write_record(activity: Callable[[A], Awaitable[R]], arg: A, what: str) -> R:
    """Runs a record local activity; `what` names the record in the failure's reason."""
    try:
        return await workflow.execute_local_activity(
            activity,
            arg,
            start_to_close_timeout=RECORD_TIMEOUT,
            schedule_to_close_timeout=RECORD_GIVE_UP,
            retry_policy=RECORD_RETRY,
        )
    except FailureError as error:
        # A local activity's failure arrives wrapped in an ActivityError or, depending on how
        # it ended (a non-retryable error, a timeout), as the failure itself.
        cause = error.cause if isinstance(error, ActivityError) else error
        if isinstance(cause, CancelledError):
            raise  # the workflow is being cancelled: not a failure of the record
        raise RecordFailed(
            f"could not write {what} to PostgreSQL ({_last_error(cause)}); check the "
            "database's availability and the orchestration worker's log"
        ) from None
