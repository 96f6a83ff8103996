"""Step output stays out of history: the worker that ran a step stores its output on the step's
record, and returns it to the workflow only when a later step's templates read it.

Every step activity (core or plugin, except `job.run`, whose result the workflow itself reads)
is registered wrapped by `recording_output`. What a command printed therefore never grows a
workflow's history: history carries the exit code and the step's state, plus the output of the
steps later templates mention (`StepRequest.return_output`), once (outputs that repeat stdout
or stderr travel as references to the stream, `StepResult.text_outputs`).

The same wrapper writes the step's state when the workflow asks it to
(`StepRequest.worker_records_state`): `running` as each attempt starts, and `succeeded` in the
write that stores a successful step's output. Per target and step, that is two writes on the
worker instead of two record local activities in the workflow (two markers in its history, two
writes on the orchestration worker, one write fewer in all).
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from opsconductor.activities.run_records import mark_step_running, store_step_output
from opsconductor.activities.steps import heartbeating
from opsconductor.contracts.steps import StepRequest, StepResult

logger = logging.getLogger(__name__)

StepActivity = Callable[[StepRequest], Awaitable[StepResult]]


def for_history(
    request: StepRequest, result: StepResult, stored: bool, succeeded: bool = False
) -> StepResult:
    if not stored:
        # The database is away: the output goes back with the result instead, and the
        # workflow's record of the step (retried until the database returns) stores it.
        return result.without_repeats()
    returned = result.without_repeats() if request.return_output else result.state_only()
    return returned.model_copy(
        update={
            "output_recorded": True,
            "state_recorded": succeeded and request.worker_records_state,
        }
    )


async def _stored(
    sessionmaker: async_sessionmaker[AsyncSession],
    request: StepRequest,
    result: StepResult,
    succeeded: bool = False,
) -> bool:
    """Whether the output reached the step's record. A command that ran is never failed (and
    so run again) because PostgreSQL was briefly away when its output was stored."""
    try:
        await store_step_output(
            sessionmaker, request, result, succeeded and request.worker_records_state
        )
    except (OSError, SQLAlchemyError):
        logger.warning(
            "step output not stored; returned with the result",
            extra={"run_id": str(request.run_id), "step_id": request.step_id},
        )
        return False
    return True


async def _mark_running(
    sessionmaker: async_sessionmaker[AsyncSession], request: StepRequest
) -> None:
    """The step's `running` state, as its attempt starts. Not written (the database is away)
    only delays what a reader sees: the step's end is written either way."""
    if not request.worker_records_state:
        return  # scheduled by a workflow that records it itself
    try:
        await mark_step_running(sessionmaker, request, request.attempt(activity.info().attempt))
    except (OSError, SQLAlchemyError):
        logger.warning(
            "step not marked running",
            extra={"run_id": str(request.run_id), "step_id": request.step_id},
        )


def failure_result(error: ApplicationError) -> StepResult | None:
    """The last attempt's result a failure carries, if it carries one we can read."""
    if not error.details:
        return None
    detail = error.details[0]
    if isinstance(detail, StepResult):
        return detail
    try:
        return StepResult.model_validate(detail)
    except ValidationError:
        return None  # a plugin's own shape: passed on as it is


def carrying(
    error: ApplicationError, *details: Any, message: str | None = None
) -> ApplicationError:
    """`error` as raised, with `details` instead of its own (and `message`, when given)."""
    return ApplicationError(
        error.message if message is None else message,
        *details,
        type=error.type,
        non_retryable=error.non_retryable,
        next_retry_delay=error.next_retry_delay,
    )


def recording_output(
    step_activity: StepActivity, sessionmaker: async_sessionmaker[AsyncSession]
) -> Callable[..., Any]:
    """The step activity under its own name, storing its output on the step's record."""
    name = activity._Definition.must_from_callable(step_activity).name

    async def run(request: StepRequest) -> StepResult:
        # Heartbeating from start to end, not only while a command runs: connecting, the run
        # log's last flush of a loud command (thousands of lines) and storing the output may
        # each outlast the step's heartbeat timeout on a busy worker or database.
        async with heartbeating():
            return await _recorded(request)

    async def _recorded(request: StepRequest) -> StepResult:
        await _mark_running(sessionmaker, request)
        try:
            result = await step_activity(request)
        except ApplicationError as error:
            failed = failure_result(error)
            if failed is None:
                raise
            stored = await _stored(sessionmaker, request, failed)
            raise carrying(error, for_history(request, failed, stored)) from None
        stored = await _stored(sessionmaker, request, result, succeeded=True)
        return for_history(request, result, stored, succeeded=True)

    return activity.defn(name=name)(run)
