"""Schedules: the database row is the definition; the Temporal schedule `schedule-<id>` runs it."""

import uuid
import zoneinfo
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Literal

import pydantic
from pydantic import AfterValidator
from sqlalchemy import String
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from opsconductor.contracts.runs import RunStatus
from opsconductor.jobspec.cron import CronError, normalize, parse
from opsconductor.jobspec.document import TargetSelector
from opsconductor.jobspec.durations import Duration
from opsconductor.models.base import id_field, timestamp_field

SCHEDULE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# Temporal refuses shorter catch-up windows.
MIN_CATCHUP_WINDOW = timedelta(seconds=10)
MAX_CATCHUP_WINDOW = timedelta(days=365)
DEFAULT_CATCHUP_WINDOW = timedelta(minutes=1)


class OverlapPolicy(StrEnum):
    """What a fire does while the schedule's previous run is still going (Temporal's names)."""

    skip = "skip"
    buffer_one = "buffer_one"
    buffer_all = "buffer_all"
    cancel_other = "cancel_other"
    terminate_other = "terminate_other"
    allow_all = "allow_all"


def _check_cron(expression: str) -> str:
    try:
        parse(expression)
    except CronError as error:
        raise ValueError(str(error)) from None
    return normalize(expression)


@cache
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _check_timezone(name: str) -> str:
    # Looked up in the list rather than opened, so no name can reach the filesystem as a path.
    if name not in _known_zones():
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. UTC, Europe/Berlin)")
    return name


def _check_catchup(window: timedelta) -> timedelta:
    if not MIN_CATCHUP_WINDOW <= window <= MAX_CATCHUP_WINDOW:
        raise ValueError("must be between 10s and 365d")
    return window


CronExpression = Annotated[str, AfterValidator(_check_cron)]
TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]
CatchupWindow = Annotated[Duration, AfterValidator(_check_catchup)]


# -- tables ---------------------------------------------------------------------------------------


class Schedule(SQLModel, table=True):
    __tablename__ = "schedules"

    id: uuid.UUID = id_field()
    job_id: uuid.UUID = Field(foreign_key="jobs.id", index=True)
    name: str = Field(max_length=64, unique=True, index=True)
    cron: str = Field(max_length=128)
    timezone: str = Field(max_length=64)
    # As given, not with the job's defaults filled in: defaults are applied at each fire, so a
    # new job version's defaults apply to later fires.
    parameters: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)
    targets: dict[str, Any] | None = Field(default=None, sa_type=JSONB)
    overlap: OverlapPolicy = Field(sa_type=String(16))
    catchup_window_seconds: int
    paused: bool = False
    note: str = Field(default="", max_length=2000)
    created_by: str = Field(max_length=64)
    # Whose credential grants its runs use: the user who created or last changed it.
    run_as: str = Field(max_length=64)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()

    @property
    def catchup_window(self) -> timedelta:
        return timedelta(seconds=self.catchup_window_seconds)


# -- API schemas ----------------------------------------------------------------------------------


class ScheduleCreate(SQLModel):
    job_id: uuid.UUID
    name: str | None = pydantic.Field(
        default=None,
        pattern=SCHEDULE_NAME_PATTERN,
        description="Unique; runs show `triggered_by: schedule:<name>`. Default: the job's "
        "name and part of the schedule's id",
    )
    cron: CronExpression = pydantic.Field(
        max_length=128,
        description="Five fields (minute hour day-of-month month day-of-week) or @hourly, "
        "@daily, @weekly, @monthly, @yearly",
        examples=["30 2 * * *", "*/15 8-18 * * mon-fri", "@daily"],
    )
    timezone: TimeZoneName = pydantic.Field(default="UTC", description="An IANA time zone")
    parameters: dict[str, Any] = pydantic.Field(default_factory=dict)
    targets: TargetSelector | None = pydantic.Field(
        default=None, description="A target selector overriding the job's"
    )
    overlap: OverlapPolicy = OverlapPolicy.skip
    catchup_window: CatchupWindow = pydantic.Field(
        default=DEFAULT_CATCHUP_WINDOW,
        description="How late a fire missed while Temporal was down may still start",
    )
    paused: bool = False
    note: str = pydantic.Field(default="", max_length=2000)


class ScheduleUpdate(SQLModel):
    name: str | None = pydantic.Field(default=None, pattern=SCHEDULE_NAME_PATTERN)
    cron: CronExpression | None = pydantic.Field(default=None, max_length=128)
    timezone: TimeZoneName | None = None
    parameters: dict[str, Any] | None = None
    targets: TargetSelector | None = None
    overlap: OverlapPolicy | None = None
    catchup_window: CatchupWindow | None = None
    paused: bool | None = None
    note: str | None = pydantic.Field(default=None, max_length=2000)


class PauseRequest(SQLModel):
    note: str = pydantic.Field(default="", max_length=2000)


class TriggerRequest(SQLModel):
    overlap: OverlapPolicy = pydantic.Field(
        default=OverlapPolicy.allow_all,
        description="Default: start now even if a run of the schedule is going",
    )


class BackfillRange(SQLModel):
    start: datetime
    end: datetime


class BackfillRequest(BackfillRange):
    overlap: OverlapPolicy = pydantic.Field(
        default=OverlapPolicy.buffer_all,
        description="Default: every time in the range runs, one after another",
    )


class FirePreviewQuery(SQLModel):
    cron: CronExpression = pydantic.Field(max_length=128)
    timezone: TimeZoneName = "UTC"


class FirePreview(SQLModel):
    cron: str = pydantic.Field(description="As it would be stored")
    timezone: str
    description: str = pydantic.Field(examples=["at 02:30 every day"])
    next_runs: list[datetime] = pydantic.Field(description="The next five fires, in UTC")


class BackfillAccepted(SQLModel):
    runs: int
    times: list[datetime]


class RecentRun(SQLModel):
    run_id: uuid.UUID
    status: RunStatus | None = pydantic.Field(description="None until the fire has stored its run")
    scheduled_at: datetime
    started_at: datetime


# The Temporal schedule: in place, missing (the reconciler restores it), or not answering.
ExecutorState = Literal["ok", "missing", "unavailable"]


class SchedulePublic(SQLModel):
    id: uuid.UUID
    job_id: uuid.UUID
    name: str
    cron: str
    timezone: str
    parameters: dict[str, Any]
    targets: dict[str, Any] | None
    overlap: OverlapPolicy
    catchup_window: Duration
    paused: bool
    note: str
    created_by: str
    run_as: str = pydantic.Field(
        description="Whose credential grants its runs use: who created or last changed it"
    )
    created_at: datetime
    updated_at: datetime
    next_runs: list[datetime] = pydantic.Field(
        description="The next five fires; empty while paused"
    )
    recent_runs: list[RecentRun]
    executor: ExecutorState = pydantic.Field(
        description="The Temporal schedule: `ok`, `missing` (reconcile restores it) or "
        "`unavailable` (Temporal did not answer)"
    )
