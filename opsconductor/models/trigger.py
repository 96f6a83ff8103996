"""Event triggers: a webhook that starts runs of a job (alerts, pushes, any signed event), and
the delivery log of every event it was sent.

The secret (bearer token or HMAC key) is sealed like a credential's and write-only. The log
keeps the payload's digest, never the body or the secret.
"""

import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator
from sqlalchemy import DateTime, Index, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from opsconductor.jobspec.document import TargetSelector
from opsconductor.jobspec.durations import Duration
from opsconductor.models.base import SealedColumns, id_field, timestamp_field

TRIGGER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
DEFAULT_DEDUP_WINDOW = timedelta(minutes=10)
MAX_DEDUP_WINDOW = timedelta(days=7)
DEFAULT_RATE_LIMIT = 60
MAX_TEMPLATE_CHARACTERS = 2000


class TriggerSource(StrEnum):
    alertmanager = "alertmanager"
    github = "github"
    generic = "generic"


class TriggerDecision(StrEnum):
    """What became of one event (or of a delivery refused before its events were read)."""

    started = "started"
    deduplicated = "deduplicated"
    filtered = "filtered"
    refused = "refused"
    rate_limited = "rate_limited"
    invalid = "invalid"
    # A dry-run test event that would have started a run (and started none).
    would_start = "would_start"


class TriggerTestMode(StrEnum):
    """A test event sent by an operator (POST /triggers/{id}/test), not by the source."""

    dry_run = "dry_run"
    live = "live"


# What a test event carries when the operator gives no payload: one event each, shaped like
# what the source really sends (docs/triggers.md, Test events).
SAMPLE_PAYLOADS: dict[TriggerSource, dict[str, Any]] = {
    TriggerSource.alertmanager: {
        "version": "4",
        "status": "firing",
        "receiver": "opsconductor",
        "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": {"alertname": "DiskFull", "severity": "critical"},
        "externalURL": "http://alertmanager.example.com",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "DiskFull",
                    "severity": "critical",
                    "instance": "web-1",
                    "mountpoint": "/var",
                },
                "annotations": {"summary": "/var on web-1 is 95% full"},
                "startsAt": "2026-01-01T00:00:00Z",
                "fingerprint": "0123456789abcdef",
            }
        ],
    },
    TriggerSource.github: {
        "ref": "refs/heads/main",
        "before": "0" * 40,
        "after": "9f2c" * 10,
        "repository": {"full_name": "example/app"},
        "pusher": {"name": "octocat"},
        "head_commit": {"id": "9f2c" * 10, "message": "A test push"},
    },
    TriggerSource.generic: {"event": "test", "message": "a test event from OpsConductor"},
}
SAMPLE_GITHUB_EVENT = "push"


def _check_window(window: timedelta) -> timedelta:
    if not timedelta(seconds=1) <= window <= MAX_DEDUP_WINDOW:
        raise ValueError("must be between 1s and 7d")
    return window


DedupWindow = Annotated[Duration, AfterValidator(_check_window)]


# -- tables ---------------------------------------------------------------------------------------


class Trigger(SealedColumns, table=True):
    """The secret is sealed in the `SealedColumns`; the templates are rendered per event."""

    __tablename__ = "triggers"

    id: uuid.UUID = id_field()
    name: str = Field(max_length=64, unique=True, index=True)
    job_id: uuid.UUID = Field(foreign_key="jobs.id", index=True)
    source: TriggerSource = Field(sa_type=String(16))
    parameters: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)
    # A target selector whose strings may be templates; None runs on the job's own targets.
    targets: dict[str, Any] | None = Field(default=None, sa_type=JSONB)
    when: str | None = Field(default=None, max_length=MAX_TEMPLATE_CHARACTERS)
    dedup_key: str | None = Field(default=None, max_length=MAX_TEMPLATE_CHARACTERS)
    dedup_window_seconds: int
    on_resolved: bool = False
    enabled: bool = True
    rate_limit: int = DEFAULT_RATE_LIMIT
    # Deliveries counted in the current minute (services/triggers.py counts them atomically,
    # so every API process enforces the same limit).
    rate_window_started_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    rate_count: int = 0
    created_by: str = Field(max_length=64)
    # Whose credential grants its runs use: who created or last changed it, as for schedules.
    run_as: str = Field(max_length=64)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()


class TriggerEvent(SQLModel, table=True):
    """One event of a delivery, or one refused delivery. No foreign key to the trigger's run:
    the log outlives it; `trigger_id` cascades, since a deleted trigger's log has no reader."""

    __tablename__ = "trigger_events"
    __table_args__ = (
        Index("ix_trigger_events_trigger_id_received_at", "trigger_id", "received_at"),
    )

    id: uuid.UUID = id_field()
    trigger_id: uuid.UUID = Field(foreign_key="triggers.id", ondelete="CASCADE")
    # Shared by the events of one delivery (an Alertmanager notification holds several alerts).
    delivery_id: uuid.UUID
    received_at: datetime = timestamp_field()
    source_address: str | None = Field(default=None, max_length=64)
    payload_sha256: str = Field(max_length=64)
    decision: TriggerDecision = Field(sa_type=String(16))
    reason: str | None = Field(default=None, sa_type=Text)
    run_id: uuid.UUID | None = None
    # Set for a test event an operator sent; None for a delivery from the source.
    test: TriggerTestMode | None = Field(default=None, sa_type=String(8))


class TriggerSignature(SQLModel, table=True):
    """Signatures of generic deliveries seen within the timestamp window: a replay is refused."""

    __tablename__ = "trigger_signatures"

    trigger_id: uuid.UUID = Field(foreign_key="triggers.id", primary_key=True, ondelete="CASCADE")
    signature_sha256: str = Field(primary_key=True, max_length=64)
    seen_at: datetime = timestamp_field()


# -- API schemas ----------------------------------------------------------------------------------


class TriggerBase(SQLModel):
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Job parameters; string values are templates"
    )
    targets: TargetSelector | None = Field(
        default=None, description="A target selector whose strings are templates"
    )
    when: str | None = Field(
        default=None,
        max_length=MAX_TEMPLATE_CHARACTERS,
        description="A condition template: events for which it is false start nothing",
    )
    dedup_key: str | None = Field(
        default=None,
        max_length=MAX_TEMPLATE_CHARACTERS,
        description="A template: events with the same key inside one window start one run",
    )
    on_resolved: bool = False
    enabled: bool = True
    rate_limit: int = Field(default=DEFAULT_RATE_LIMIT, ge=1, le=100_000)


class TriggerCreate(TriggerBase):
    name: str = Field(max_length=64, schema_extra={"pattern": TRIGGER_NAME_PATTERN})
    job_id: uuid.UUID
    source: TriggerSource
    secret: str = Field(min_length=16, max_length=1024, description="Write-only")
    dedup_window: DedupWindow = DEFAULT_DEDUP_WINDOW


class TriggerUpdate(SQLModel):
    """Fields given replace the stored ones; a new `secret` replaces the sealed one."""

    name: str | None = Field(
        default=None, max_length=64, schema_extra={"pattern": TRIGGER_NAME_PATTERN}
    )
    job_id: uuid.UUID | None = None
    secret: str | None = Field(default=None, min_length=16, max_length=1024)
    parameters: dict[str, Any] | None = None
    targets: TargetSelector | None = None
    when: str | None = Field(default=None, max_length=MAX_TEMPLATE_CHARACTERS)
    dedup_key: str | None = Field(default=None, max_length=MAX_TEMPLATE_CHARACTERS)
    dedup_window: DedupWindow | None = None
    on_resolved: bool | None = None
    enabled: bool | None = None
    rate_limit: int | None = Field(default=None, ge=1, le=100_000)


class TriggerPublic(SQLModel):
    id: uuid.UUID
    name: str
    job_id: uuid.UUID
    source: TriggerSource
    url: str
    parameters: dict[str, Any]
    targets: dict[str, Any] | None
    when: str | None
    dedup_key: str | None
    dedup_window: str
    on_resolved: bool
    enabled: bool
    rate_limit: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class TriggerEventPublic(SQLModel):
    id: uuid.UUID
    delivery_id: uuid.UUID
    received_at: datetime
    source_address: str | None
    payload_sha256: str
    decision: TriggerDecision
    reason: str | None
    run_id: uuid.UUID | None
    test: TriggerTestMode | None


class HookAccepted(SQLModel):
    runs: list[uuid.UUID]
    deduplicated: int
    filtered: int
    # Events the runs service refused (parameters the job does not take, no target matched):
    # each is in the delivery log with its reason.
    invalid: int = 0


class TriggerTestRequest(SQLModel):
    payload: dict[str, Any] | None = Field(
        default=None,
        description="The body the source would send; absent: a sample for the trigger's source",
    )
    event_name: str | None = Field(
        default=None,
        max_length=100,
        description=f"github only: the X-GitHub-Event name (default {SAMPLE_GITHUB_EVENT})",
    )
    dry_run: bool = Field(
        default=True, description="Evaluate and report, start nothing (false: start the runs)"
    )


class TriggerTestEvent(SQLModel):
    """One event of a test: what the templates made of it and what was (or would be) done."""

    decision: TriggerDecision
    reason: str | None = None
    parameters: dict[str, Any] | None = None
    # The rendered target selector (None: the job's own), and, for a dry run that would start
    # a run, the names of the targets it would run on.
    targets: dict[str, Any] | None = None
    target_names: list[str] | None = None
    dedup_key: str | None = None
    run_id: uuid.UUID | None = None


class TriggerTestResult(SQLModel):
    dry_run: bool
    delivery_id: uuid.UUID
    payload: dict[str, Any]
    # One per event, in the events' order; `decisions` repeats theirs for a quick look.
    decisions: list[TriggerDecision]
    events: list[TriggerTestEvent]
    runs: list[uuid.UUID]
