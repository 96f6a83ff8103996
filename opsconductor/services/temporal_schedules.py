"""Temporal Schedules for schedule rows: what `schedule-<id>` should be, and putting it there.

Nothing here runs a schedule: Temporal fires `schedule-<id>` itself, starting a
`ScheduledRunWorkflow` each time. This module only builds, writes, reads, deletes and compares
those Temporal Schedules (and triggers or backfills them on request).

A schedule row maps to exactly one Temporal schedule, built by `desired`. The cron expression
becomes explicit calendars (every field spelled out, ranges sorted), which Temporal stores and
describes back unchanged, so the reconciler can compare what is there with what should be.
"""

import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.common.v1 import Payload
from temporalio.api.workflowservice.v1 import ListScheduleMatchingTimesRequest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleBackfill,
    ScheduleCalendarSpec,
    ScheduleDescription,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
)
from temporalio.service import RPCError, RPCStatusCode

from opsconductor.contracts.queues import TaskQueue
from opsconductor.contracts.schedules import ScheduledFire, fire_workflow_id, temporal_schedule_id
from opsconductor.errors import DependencyUnavailable
from opsconductor.jobspec.cron import Cron, parse
from opsconductor.models.schedule import OverlapPolicy
from opsconductor.models.schedule import Schedule as ScheduleRow
from opsconductor.workflows.scheduled_run import ScheduledRunWorkflow

OVERLAP = {
    OverlapPolicy.skip: ScheduleOverlapPolicy.SKIP,
    OverlapPolicy.buffer_one: ScheduleOverlapPolicy.BUFFER_ONE,
    OverlapPolicy.buffer_all: ScheduleOverlapPolicy.BUFFER_ALL,
    OverlapPolicy.cancel_other: ScheduleOverlapPolicy.CANCEL_OTHER,
    OverlapPolicy.terminate_other: ScheduleOverlapPolicy.TERMINATE_OTHER,
    OverlapPolicy.allow_all: ScheduleOverlapPolicy.ALLOW_ALL,
}
_ALL_DAYS_OF_MONTH = frozenset(range(1, 32))
_ALL_DAYS_OF_WEEK = frozenset(range(7))


def desired(row: ScheduleRow) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ScheduledRunWorkflow.run,
            ScheduledFire(schedule_id=row.id),
            id=fire_workflow_id(row.id),
            task_queue=TaskQueue.orchestration.value,
            # Each fire's workflow shows it in the Temporal UI (its run, the child, says more).
            static_summary=f"schedule {row.name}",
        ),
        spec=ScheduleSpec(calendars=calendars(parse(row.cron)), time_zone_name=row.timezone),
        policy=SchedulePolicy(overlap=OVERLAP[row.overlap], catchup_window=row.catchup_window),
        state=ScheduleState(paused=row.paused, note=row.note),
    )


def calendars(cron: Cron) -> list[ScheduleCalendarSpec]:
    """Temporal matches a calendar when every field matches; crontab(5) matches a day when
    either day field does if both are restricted, which takes one calendar for each."""
    if cron.day_of_month_restricted and cron.day_of_week_restricted:
        return [
            _calendar(cron, cron.days_of_month, _ALL_DAYS_OF_WEEK),
            _calendar(cron, _ALL_DAYS_OF_MONTH, cron.days_of_week),
        ]
    return [_calendar(cron, cron.days_of_month, cron.days_of_week)]


def _calendar(
    cron: Cron, days_of_month: frozenset[int], days_of_week: frozenset[int]
) -> ScheduleCalendarSpec:
    return ScheduleCalendarSpec(
        second=(ScheduleRange(0, 0, 1),),
        minute=_ranges(cron.minutes),
        hour=_ranges(cron.hours),
        day_of_month=_ranges(days_of_month),
        month=_ranges(cron.months),
        year=(),
        day_of_week=_ranges(days_of_week),
        comment=None,
    )


def _ranges(values: Iterable[int]) -> tuple[ScheduleRange, ...]:
    """Consecutive values as one range each: the canonical form Temporal describes back."""
    ranges: list[ScheduleRange] = []
    for value in sorted(values):
        if ranges and ranges[-1].end == value - 1:
            ranges[-1] = ScheduleRange(ranges[-1].start, value, 1)
        else:
            ranges.append(ScheduleRange(value, value, 1))
    return tuple(ranges)


# A Temporal that does not answer within this is reported (503), not waited for.
RPC_TIMEOUT = timedelta(seconds=10)


def _is_missing(error: RPCError) -> bool:
    return error.status is RPCStatusCode.NOT_FOUND


@asynccontextmanager
async def _temporal(doing: str) -> AsyncIterator[None]:
    """Temporal's failures as one typed error naming what was being done."""
    try:
        yield
    except RPCError as error:
        hint = ""
        if _is_missing(error):
            hint = " (it is missing there; `opsconductor schedules reconcile` restores it)"
        raise DependencyUnavailable(f"Temporal did not {doing}: {error.message}{hint}") from None
    except (RuntimeError, OSError) as error:
        # The lazily connected client raises RuntimeError when the server cannot be reached.
        raise DependencyUnavailable(f"Temporal did not {doing}: {error}") from None


async def put(client: Client, schedule_id: uuid.UUID, schedule: Schedule) -> None:
    """Creates or replaces `schedule-<id>` (idempotent)."""
    handle = client.get_schedule_handle(temporal_schedule_id(schedule_id))

    async def replace() -> None:
        await handle.update(lambda _: ScheduleUpdate(schedule=schedule), rpc_timeout=RPC_TIMEOUT)

    async with _temporal("accept the schedule"):
        try:
            await replace()
        except RPCError as error:
            if not _is_missing(error):
                raise
            try:
                await client.create_schedule(
                    temporal_schedule_id(schedule_id), schedule, rpc_timeout=RPC_TIMEOUT
                )
            except ScheduleAlreadyRunningError:
                # Created by someone else since our update: ours replaces it.
                await replace()


async def remove(client: Client, schedule_id: uuid.UUID) -> None:
    """Deletes `schedule-<id>`; one already gone is fine (idempotent)."""
    await remove_by_temporal_id(client, temporal_schedule_id(schedule_id))


async def remove_by_temporal_id(client: Client, schedule_temporal_id: str) -> None:
    async with _temporal("delete the schedule"):
        try:
            await client.get_schedule_handle(schedule_temporal_id).delete(rpc_timeout=RPC_TIMEOUT)
        except RPCError as error:
            if not _is_missing(error):
                raise


async def describe(client: Client, schedule_id: uuid.UUID) -> ScheduleDescription | None:
    """None when the schedule is missing on Temporal."""
    async with _temporal("describe the schedule"):
        try:
            return await client.get_schedule_handle(temporal_schedule_id(schedule_id)).describe(
                rpc_timeout=RPC_TIMEOUT
            )
        except RPCError as error:
            if _is_missing(error):
                return None
            raise


async def trigger(client: Client, schedule_id: uuid.UUID, overlap: OverlapPolicy) -> None:
    async with _temporal("trigger the schedule"):
        await client.get_schedule_handle(temporal_schedule_id(schedule_id)).trigger(
            overlap=OVERLAP[overlap], rpc_timeout=RPC_TIMEOUT
        )


async def matching_times(
    client: Client, schedule_id: uuid.UUID, first: datetime, last: datetime
) -> list[datetime]:
    """The fire times in [first, last] (whole seconds), as Temporal computes them."""
    request = ListScheduleMatchingTimesRequest(
        namespace=client.namespace,
        schedule_id=temporal_schedule_id(schedule_id),
        # Temporal lists the times after its start and up to its end; fires fall on whole
        # seconds, so one second earlier takes `first` in.
        start_time=_timestamp(first - timedelta(seconds=1)),
        end_time=_timestamp(last),
    )
    async with _temporal("list the schedule's times"):
        answer = await client.workflow_service.list_schedule_matching_times(
            request, timeout=RPC_TIMEOUT
        )
    return [time.ToDatetime(tzinfo=UTC) for time in answer.start_time]


async def backfill(
    client: Client, schedule_id: uuid.UUID, first: datetime, last: datetime, overlap: OverlapPolicy
) -> None:
    """Fires every time in [first, last] (Temporal's backfill takes both ends in)."""
    async with _temporal("backfill the schedule"):
        await client.get_schedule_handle(temporal_schedule_id(schedule_id)).backfill(
            ScheduleBackfill(start_at=first, end_at=last, overlap=OVERLAP[overlap]),
            rpc_timeout=RPC_TIMEOUT,
        )


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


@dataclass(frozen=True, slots=True)
class Drift:
    """How the Temporal schedule differs from its row (empty: not at all)."""

    parts: tuple[str, ...]


async def drift(client: Client, found: ScheduleDescription, want: Schedule) -> Drift:
    have = found.schedule
    parts = []
    if have.spec != want.spec:
        parts.append("spec")
    if (have.policy.overlap, have.policy.catchup_window) != (
        want.policy.overlap,
        want.policy.catchup_window,
    ):
        parts.append("policy")
    if (have.state.paused, have.state.note or "") != (want.state.paused, want.state.note or ""):
        parts.append("state")
    if not await _same_action(client, have.action, want.action):
        parts.append("action")
    return Drift(tuple(parts))


async def _same_action(client: Client, have: object, want: object) -> bool:
    if not isinstance(have, ScheduleActionStartWorkflow):
        return False
    assert isinstance(want, ScheduleActionStartWorkflow)
    if (have.workflow, have.id, have.task_queue) != (want.workflow, want.id, want.task_queue):
        return False
    try:
        # Described arguments and summary come back as (encrypted) payloads: decode to compare.
        args = await client.data_converter.decode(have.args, [ScheduledFire])
        summary = (
            await client.data_converter.decode([have.static_summary], [str])
            if isinstance(have.static_summary, Payload)
            else [have.static_summary]
        )
    except Exception:  # anything undecodable (another key, another type) is not our action
        return False
    return list(args) == list(want.args) and summary == [want.static_summary]
