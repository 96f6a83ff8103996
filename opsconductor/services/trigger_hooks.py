"""Event triggers, the deliveries: `POST /hooks/{id}` authenticated by the trigger's secret,
turned into events, mapped through the trigger's templates, and started as ordinary runs
through the runs service (services/runs.py), deduplicated by an idempotency key.

The order matters (docs/triggers.md): the trigger is looked up (404 alike for an unknown and
a disabled one), the body's size checked, the token or signature compared in constant time
before a byte of the body is parsed, a generic delivery's timestamp and signature checked
against replays, the rate limit counted, and only then the JSON read. Every delivery leaves
rows in the delivery log (`trigger_events`): one per event, or one for a delivery refused as a
whole, with the payload's SHA-256 and never the body or the secret. A refusal's row is
written in a side transaction, since the request's own is rolled back.

An operator's test event (`send_test`, `POST /api/v1/triggers/{id}/test`) takes the same path
from the size check on, skipping only the signature (the operator is signed in instead); a
dry run also skips the rate limit and starts nothing, reporting what each event would do.
"""

import hashlib
import hmac
import json
import math
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, case, delete, or_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.db import side_transaction
from opsconductor.errors import (
    Conflict,
    FieldProblem,
    InputInvalid,
    NotAuthenticated,
    NotFound,
    OpsConductorError,
    PayloadTooLarge,
    TooManyRequests,
)
from opsconductor.jobspec.document import JobDocument
from opsconductor.jobspec.templates import TemplateProblem, render, render_condition, render_value
from opsconductor.models.run import Run, RunCreate
from opsconductor.models.trigger import (
    SAMPLE_GITHUB_EVENT,
    SAMPLE_PAYLOADS,
    HookAccepted,
    Trigger,
    TriggerDecision,
    TriggerEvent,
    TriggerSignature,
    TriggerSource,
    TriggerTestEvent,
    TriggerTestMode,
    TriggerTestRequest,
    TriggerTestResult,
)
from opsconductor.security.envelope import KeyRing
from opsconductor.services import credential_grants, jobs, runs
from opsconductor.services.audit import AuditEntry
from opsconductor.services.credential_grants import requester_named
from opsconductor.services.run_launch import idempotent_run_id
from opsconductor.services.sealing import open_row
from opsconductor.services.triggers import associated_data, get_trigger
from opsconductor.services.workflows import Workflows

MAX_BODY_BYTES = 1024 * 1024
# A generic delivery's timestamp may be this far from our clock, either way.
TIMESTAMP_TOLERANCE = timedelta(minutes=5)
RATE_WINDOW = timedelta(minutes=1)
SIGNATURE_HEADER = "x-opsconductor-signature"
TIMESTAMP_HEADER = "x-opsconductor-timestamp"
GITHUB_SIGNATURE_HEADER = "x-hub-signature-256"
GITHUB_EVENT_HEADER = "x-github-event"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One request to a hook, as the router read it."""

    body: bytes
    headers: Mapping[str, str]  # lower-case names
    source_address: str | None
    received_at: datetime
    request_id: str | None
    batch_size: int
    delivery_id: uuid.UUID = field(default_factory=uuid.uuid4)
    # Set for an operator's test event (send_test), which the log marks as such.
    test: TriggerTestMode | None = None

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


@dataclass(frozen=True, slots=True)
class Mapped:
    """One event after the trigger's templates: the run it asks for, or why it asks none."""

    body: RunCreate | None
    dedup_key: str | None = None
    filtered_because: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one event, as its delivery log row says."""

    decision: TriggerDecision
    reason: str | None = None
    run_id: uuid.UUID | None = None
    # A dry run's: the targets the run would have had.
    target_names: list[str] | None = None


# -- the delivery log -------------------------------------------------------------------------


def _log(
    session: AsyncSession,
    trigger: Trigger,
    delivery: Delivery,
    decision: TriggerDecision,
    reason: str | None = None,
    run_id: uuid.UUID | None = None,
) -> None:
    session.add(
        TriggerEvent(
            trigger_id=trigger.id,
            delivery_id=delivery.delivery_id,
            received_at=delivery.received_at,
            source_address=delivery.source_address,
            payload_sha256=delivery.digest,
            decision=decision,
            reason=reason,
            run_id=run_id,
            test=delivery.test,
        )
    )


def _logged(
    session: AsyncSession, trigger: Trigger, delivery: Delivery, outcome: Outcome
) -> Outcome:
    _log(session, trigger, delivery, outcome.decision, outcome.reason, outcome.run_id)
    return outcome


async def _refuse(
    sessionmaker: async_sessionmaker[AsyncSession],
    trigger: Trigger,
    delivery: Delivery,
    decision: TriggerDecision,
    error: OpsConductorError,
) -> OpsConductorError:
    """Records the refused delivery (kept though the request is rolled back); answers the
    error for the caller to raise."""
    async with side_transaction(sessionmaker) as side:
        _log(side, trigger, delivery, decision, error.detail)
    return error


# -- authentication ---------------------------------------------------------------------------


def _hmac_hex(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _authenticate(trigger: Trigger, secret: bytes, delivery: Delivery) -> str | None:
    """Raises NotAuthenticated unless the delivery carries the trigger's token or signature;
    answers the generic source's signature, which must not be seen twice."""
    headers = delivery.headers
    if trigger.source == TriggerSource.alertmanager:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise NotAuthenticated("a bearer token is required")
        if not _same(token.strip(), secret.decode()):
            raise NotAuthenticated("the bearer token is wrong")
        return None
    if trigger.source == TriggerSource.github:
        given = headers.get(GITHUB_SIGNATURE_HEADER, "")
        if not given:
            raise NotAuthenticated(f"the {GITHUB_SIGNATURE_HEADER} header is required")
        if not _same(given, f"sha256={_hmac_hex(secret, delivery.body)}"):
            raise NotAuthenticated(f"the {GITHUB_SIGNATURE_HEADER} signature does not match")
        return None
    given = headers.get(SIGNATURE_HEADER, "")
    stamp = headers.get(TIMESTAMP_HEADER, "")
    if not given or not stamp:
        raise NotAuthenticated(
            f"the {SIGNATURE_HEADER} and {TIMESTAMP_HEADER} headers are required"
        )
    signed = stamp.encode() + b"." + delivery.body
    if not _same(given, f"sha256={_hmac_hex(secret, signed)}"):
        raise NotAuthenticated(f"the {SIGNATURE_HEADER} signature does not match")
    try:
        sent_at = int(stamp)
    except ValueError:
        raise NotAuthenticated(f"{TIMESTAMP_HEADER} is not a Unix time in seconds") from None
    if abs(delivery.received_at.timestamp() - sent_at) > TIMESTAMP_TOLERANCE.total_seconds():
        raise NotAuthenticated(f"{TIMESTAMP_HEADER} is more than 5 minutes from the server's clock")
    return given


async def _refuse_replay(
    sessionmaker: async_sessionmaker[AsyncSession], trigger: Trigger, signature: str, now: datetime
) -> None:
    """A generic signature is accepted once: recorded and committed at once, so a concurrent
    replay conflicts with it. Signatures older than the timestamp window can no longer be
    replayed (their timestamp is stale) and are forgotten."""
    table: Table = TriggerSignature.__table__  # type: ignore[attr-defined]
    digest = hashlib.sha256(signature.encode()).hexdigest()
    async with side_transaction(sessionmaker) as side:
        await side.exec(
            delete(TriggerSignature).where(
                col(TriggerSignature.trigger_id) == trigger.id,
                col(TriggerSignature.seen_at) < now - 2 * TIMESTAMP_TOLERANCE,
            )
        )
        recorded = await side.exec(
            insert(table)
            .values(trigger_id=trigger.id, signature_sha256=digest, seen_at=now)
            .on_conflict_do_nothing()
            .returning(table.c.signature_sha256)
        )
        first = recorded.first()
    if first is None:
        raise NotAuthenticated("this signature was already used (a replayed delivery)")


async def _count_delivery(
    sessionmaker: async_sessionmaker[AsyncSession], trigger: Trigger, now: datetime
) -> int | None:
    """Counts the delivery in the trigger's current minute, in one atomic statement committed
    at once (so every API process sees it); answers the seconds to wait when over the limit."""
    table: Table = Trigger.__table__  # type: ignore[attr-defined]
    window_over = or_(
        table.c.rate_window_started_at.is_(None),
        table.c.rate_window_started_at <= now - RATE_WINDOW,
    )
    async with side_transaction(sessionmaker) as side:
        row = (
            await side.exec(
                update(table)
                .where(table.c.id == trigger.id)
                .values(
                    rate_count=case((window_over, 1), else_=table.c.rate_count + 1),
                    rate_window_started_at=case(
                        (window_over, now), else_=table.c.rate_window_started_at
                    ),
                )
                .returning(table.c.rate_count, table.c.rate_window_started_at)
            )
        ).one()
    count: int = row[0]
    started_at: datetime = row[1]
    if count <= trigger.rate_limit:
        return None
    return math.ceil((started_at + RATE_WINDOW - now).total_seconds())


# -- events and their mapping -----------------------------------------------------------------


def _events(trigger: Trigger, delivery: Delivery, payload: Any, at: str) -> list[dict[str, Any]]:
    """The template contexts of the delivery's events; `at` is where the payload is in the
    request (for a problem's path)."""
    if trigger.source == TriggerSource.alertmanager:
        alerts = payload.get("alerts") if isinstance(payload, dict) else None
        if not isinstance(alerts, list):
            raise InputInvalid.at(f"{at}.alerts", "is not a list of alerts")
        group = {key: value for key, value in payload.items() if key != "alerts"}
        return [{"alert": alert, "group": group} for alert in alerts]
    if trigger.source == TriggerSource.github:
        return [{"event": payload, "event_name": delivery.headers.get(GITHUB_EVENT_HEADER, "")}]
    return [{"payload": payload}]


def _skipped(trigger: Trigger, context: Mapping[str, Any]) -> str | None:
    """Why the source itself says the event starts nothing (before the trigger's `when`)."""
    alert = context.get("alert")
    if isinstance(alert, dict) and alert.get("status") == "resolved" and not trigger.on_resolved:
        return "a resolved alert (on_resolved is false)"
    if context.get("event_name") == "ping":
        return "GitHub's ping event"
    return None


def _rendered(template: Any, context: Mapping[str, Any], path: str) -> Any:
    try:
        return render_value(template, context)
    except TemplateProblem as error:
        raise _mapping_failed(path, template, error) from None


def _mapping_failed(path: str, template: Any, error: TemplateProblem) -> InputInvalid:
    return InputInvalid(
        f"the trigger's template {path} failed: {error}",
        [FieldProblem(path, f"{template!r}: {error}", "template_failed")],
    )


def _map(trigger: Trigger, context: Mapping[str, Any]) -> Mapped:
    """The run an event asks for; InputInvalid naming the template that failed."""
    if (skipped := _skipped(trigger, context)) is not None:
        return Mapped(body=None, filtered_because=skipped)
    if trigger.when is not None:
        try:
            wanted = render_condition(trigger.when, context)
        except TemplateProblem as error:
            raise _mapping_failed("trigger.when", trigger.when, error) from None
        if not wanted:
            return Mapped(body=None, filtered_because="`when` is false")
    dedup_key = None
    if trigger.dedup_key is not None:
        try:
            dedup_key = render(trigger.dedup_key, context)
        except TemplateProblem as error:
            raise _mapping_failed("trigger.dedup_key", trigger.dedup_key, error) from None
    parameters = {
        name: _rendered(value, context, f"trigger.parameters.{name}")
        for name, value in trigger.parameters.items()
    }
    targets = (
        None if trigger.targets is None else _rendered(trigger.targets, context, "trigger.targets")
    )
    return Mapped(body=RunCreate(parameters=parameters, targets=targets), dedup_key=dedup_key)


def idempotency_key(trigger: Trigger, dedup_key: str, now: datetime) -> str:
    """The run's Idempotency-Key: the dedup key's digest in the window it falls in (fixed
    windows from the Unix epoch), so a re-sent event inside the window names the same run."""
    bucket = int(now.timestamp()) // trigger.dedup_window_seconds
    return f"trigger:{bucket}:{hashlib.sha256(dedup_key.encode()).hexdigest()}"


# -- the delivery ----------------------------------------------------------------------------


async def _usable(
    session: AsyncSession, trigger: Trigger
) -> tuple[credential_grants.Requester, str | None]:
    """Who its runs act for, and why it can start none (its job gone, a grant revoked)."""
    requester = await requester_named(session, trigger.run_as)
    try:
        job = await jobs.get_job(session, trigger.job_id)
    except NotFound:
        return requester, f"trigger {trigger.name!r} cannot start runs: its job is gone"
    if requester.role is None:
        return requester, (
            f"trigger {trigger.name!r} cannot start runs: {trigger.run_as} is no active user"
        )
    document = JobDocument.model_validate(job.document)
    problems = await credential_grants.document_problems(session, requester, document)
    if problems:
        named = "; ".join(f"{item.path}: {item.message}" for item in problems)
        return requester, f"trigger {trigger.name!r} cannot start runs: {named}"
    return requester, None


async def _enabled_trigger(
    sessionmaker: async_sessionmaker[AsyncSession], trigger_id: uuid.UUID
) -> Trigger:
    async with sessionmaker() as reader:
        trigger = await reader.get(Trigger, trigger_id)
    if trigger is None or not trigger.enabled:
        # One answer for both, naming no id, so ids cannot be probed.
        raise NotFound("no such trigger")
    return trigger


async def receive(
    session: AsyncSession,
    workflows: Workflows,
    keyring: KeyRing,
    trigger_id: uuid.UUID,
    delivery: Delivery,
) -> HookAccepted:
    """Authenticates the delivery, maps its events and starts their runs (module docstring).

    Everything before the runs uses short sessions of its own, each ended before the next, and
    the request's session is first used after them: a burst of deliveries then never holds one
    pooled connection while waiting for another."""
    sessionmaker = workflows.sessionmaker
    trigger = await _enabled_trigger(sessionmaker, trigger_id)
    await _check_size(sessionmaker, trigger, delivery)
    secret = open_row(trigger, keyring, associated_data(trigger.id))
    try:
        signature = _authenticate(trigger, secret, delivery)
        if signature is not None:
            await _refuse_replay(sessionmaker, trigger, signature, delivery.received_at)
    except NotAuthenticated as error:
        raise await _refuse(
            sessionmaker, trigger, delivery, TriggerDecision.refused, error
        ) from None
    await _check_rate(sessionmaker, trigger, delivery)
    events, requester = await _evaluate(session, sessionmaker, trigger, delivery, "body")
    outcomes = await _start(session, workflows, trigger, delivery, events, requester)
    decisions = Counter(outcome.decision for outcome in outcomes)
    return HookAccepted(
        runs=_started(outcomes),
        deduplicated=decisions[TriggerDecision.deduplicated],
        filtered=decisions[TriggerDecision.filtered],
        invalid=decisions[TriggerDecision.invalid],
    )


def _started(outcomes: list[Outcome]) -> list[uuid.UUID]:
    return [
        outcome.run_id
        for outcome in outcomes
        if outcome.decision is TriggerDecision.started and outcome.run_id is not None
    ]


async def _check_size(
    sessionmaker: async_sessionmaker[AsyncSession], trigger: Trigger, delivery: Delivery
) -> None:
    if len(delivery.body) > MAX_BODY_BYTES:
        raise await _refuse(
            sessionmaker,
            trigger,
            delivery,
            TriggerDecision.refused,
            PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes"),
        )


async def _check_rate(
    sessionmaker: async_sessionmaker[AsyncSession], trigger: Trigger, delivery: Delivery
) -> None:
    wait = await _count_delivery(sessionmaker, trigger, delivery.received_at)
    if wait is not None:
        raise await _refuse(
            sessionmaker,
            trigger,
            delivery,
            TriggerDecision.rate_limited,
            TooManyRequests(
                f"trigger {trigger.name!r} takes at most {trigger.rate_limit} deliveries a minute",
                wait,
            ),
        )


async def _evaluate(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    trigger: Trigger,
    delivery: Delivery,
    at: str,
) -> tuple[list[Mapped], credential_grants.Requester]:
    """The delivery's events through the trigger's templates, and whom their runs act for;
    a mapping that fails or a trigger that can start nothing refuses the whole delivery."""
    try:
        payload = json.loads(delivery.body)
        mapped = [_map(trigger, context) for context in _events(trigger, delivery, payload, at)]
    except InputInvalid as error:
        raise await _refuse(
            sessionmaker, trigger, delivery, TriggerDecision.invalid, error
        ) from None
    except ValueError as error:  # the body is not JSON
        raise await _refuse(
            sessionmaker,
            trigger,
            delivery,
            TriggerDecision.invalid,
            InputInvalid.at(at, f"is not JSON: {error}"),
        ) from None
    requester, unusable = await _usable(session, trigger)
    if unusable is not None:
        raise await _refuse(
            sessionmaker, trigger, delivery, TriggerDecision.refused, Conflict(unusable)
        )
    return mapped, requester


def _origin(
    trigger: Trigger,
    delivery: Delivery,
    key: str | None,
    requester: credential_grants.Requester,
) -> runs.RunOrigin:
    return runs.RunOrigin(
        triggered_by=f"trigger:{trigger.name}",
        request_id=delivery.request_id,
        batch_size=delivery.batch_size,
        idempotency_key=key,
        # Keys are scoped to the trigger, so two triggers never share a run.
        user_id=trigger.id,
        requester=requester,
    )


def _refusal(error: InputInvalid) -> Outcome:
    problems = "; ".join(f"{item.path}: {item.message}" for item in error.problems)
    return Outcome(TriggerDecision.invalid, f"{error.detail} ({problems})")


async def _start(
    session: AsyncSession,
    workflows: Workflows,
    trigger: Trigger,
    delivery: Delivery,
    events: list[Mapped],
    requester: credential_grants.Requester,
) -> list[Outcome]:
    """Starts each event's run and logs it; answers the outcomes in the events' order."""
    outcomes: dict[int, Outcome] = {}
    keys = {
        index: idempotency_key(trigger, event.dedup_key, delivery.received_at)
        for index, event in enumerate(events)
        if event.dedup_key is not None
    }
    # In the order of the runs they name: the runs service locks each idempotent run id until
    # its row is committed, and one order everywhere means two deliveries never deadlock.
    order = sorted(
        range(len(events)),
        key=lambda index: (
            str(idempotent_run_id(trigger.job_id, trigger.id, keys[index])) if index in keys else ""
        ),
    )
    for index in order:
        event = events[index]
        if event.body is None:
            outcome = Outcome(TriggerDecision.filtered, event.filtered_because)
            outcomes[index] = _logged(session, trigger, delivery, outcome)
            continue
        origin = _origin(trigger, delivery, keys.get(index), requester)
        entry = AuditEntry.for_action("trigger.fire", resource_id=str(trigger.id))
        try:
            accepted = await runs.start_run(
                session, workflows, trigger.job_id, event.body, origin, entry
            )
        except InputInvalid as error:
            # Parameters the job does not take, a selector matching nothing, a target's
            # credential not granted: this event starts nothing, the others go on.
            outcomes[index] = _logged(session, trigger, delivery, _refusal(error))
            continue
        if entry.detail.get("idempotent_replay"):
            outcome = Outcome(TriggerDecision.deduplicated, DEDUPLICATED, accepted.id)
        else:
            outcome = Outcome(TriggerDecision.started, run_id=accepted.id)
        outcomes[index] = _logged(session, trigger, delivery, outcome)
    await session.flush()
    return [outcomes[index] for index in range(len(events))]


DEDUPLICATED = "an event with the same dedup key started this run inside the window"


# -- test events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TestSender:
    """The operator's request that carries a test event, as the router read it."""

    source_address: str | None
    request_id: str | None
    batch_size: int
    received_at: datetime


async def send_test(
    session: AsyncSession,
    workflows: Workflows,
    trigger_id: uuid.UUID,
    request: TriggerTestRequest,
    sender: TestSender,
) -> TriggerTestResult:
    """An operator's test event (docs/triggers.md, Test events): the delivery path after the
    signature check (the operator is signed in instead), logged as a test. A dry run neither
    counts against the rate limit nor starts a run: it reports what each event would do."""
    sessionmaker = workflows.sessionmaker
    async with sessionmaker() as reader:
        trigger = await get_trigger(reader, trigger_id)
    if not request.dry_run and not trigger.enabled:
        raise Conflict(f"trigger {trigger.name!r} is disabled: only a dry run may test it")
    source = TriggerSource(trigger.source)
    payload = SAMPLE_PAYLOADS[source] if request.payload is None else request.payload
    headers = (
        {GITHUB_EVENT_HEADER: request.event_name or SAMPLE_GITHUB_EVENT}
        if source == TriggerSource.github
        else {}
    )
    delivery = Delivery(
        body=json.dumps(payload).encode(),
        headers=headers,
        source_address=sender.source_address,
        received_at=sender.received_at,
        request_id=sender.request_id,
        batch_size=sender.batch_size,
        test=TriggerTestMode.dry_run if request.dry_run else TriggerTestMode.live,
    )
    await _check_size(sessionmaker, trigger, delivery)
    if not request.dry_run:
        await _check_rate(sessionmaker, trigger, delivery)
    events, requester = await _evaluate(session, sessionmaker, trigger, delivery, "body.payload")
    if request.dry_run:
        outcomes = await _dry_run(session, trigger, delivery, events, requester)
    else:
        outcomes = await _start(session, workflows, trigger, delivery, events, requester)
    return TriggerTestResult(
        dry_run=request.dry_run,
        delivery_id=delivery.delivery_id,
        payload=payload,
        decisions=[outcome.decision for outcome in outcomes],
        events=[
            TriggerTestEvent(
                decision=outcome.decision,
                reason=outcome.reason,
                parameters=None if event.body is None else event.body.parameters,
                targets=None if event.body is None else event.body.targets,
                target_names=outcome.target_names,
                dedup_key=event.dedup_key,
                run_id=outcome.run_id,
            )
            for event, outcome in zip(events, outcomes, strict=True)
        ],
        runs=_started(outcomes),
    )


async def _dry_run(
    session: AsyncSession,
    trigger: Trigger,
    delivery: Delivery,
    events: list[Mapped],
    requester: credential_grants.Requester,
) -> list[Outcome]:
    """What `_start` would do with each event, starting nothing: a dedup key already used in
    its window names the run it would repeat; otherwise the runs service validates the run
    (parameters, targets, credential grants) in a savepoint that is then rolled back."""
    job = await jobs.get_job(session, trigger.job_id)
    outcomes = []
    for event in events:
        if event.body is None:
            outcome = Outcome(TriggerDecision.filtered, event.filtered_because)
            outcomes.append(_logged(session, trigger, delivery, outcome))
            continue
        key = None
        if event.dedup_key is not None:
            key = idempotency_key(trigger, event.dedup_key, delivery.received_at)
            existing = await session.get(Run, idempotent_run_id(trigger.job_id, trigger.id, key))
            if existing is not None:
                outcome = Outcome(TriggerDecision.deduplicated, DEDUPLICATED, existing.id)
                outcomes.append(_logged(session, trigger, delivery, outcome))
                continue
        origin = _origin(trigger, delivery, key, requester)
        try:
            async with session.begin_nested() as savepoint:
                prepared = await runs.prepare_run(session, job, event.body, origin)
                names = [target["name"] for target in prepared.run.targets]
                await savepoint.rollback()
        except InputInvalid as error:
            outcomes.append(_logged(session, trigger, delivery, _refusal(error)))
            continue
        outcome = Outcome(
            TriggerDecision.would_start, "a dry run: no run was started", target_names=names
        )
        outcomes.append(_logged(session, trigger, delivery, outcome))
    await session.flush()
    return outcomes
