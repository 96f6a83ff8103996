"""Brings Temporal's schedules in step with the schedule rows: at API start and on demand.

Missing `schedule-<id>` are created, changed ones put back, and `schedule-*` without a row
deleted. It holds the schedules' advisory lock exclusively while it works, so replicas
starting together take turns (the second finds nothing to do) and no API change is half made
while it looks.
"""

import asyncio
import logging
from dataclasses import dataclass, field

from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError

from opsconductor.contracts.schedules import TEMPORAL_SCHEDULE_PREFIX, temporal_schedule_id
from opsconductor.db import unit_of_work
from opsconductor.errors import DependencyUnavailable
from opsconductor.models.schedule import Schedule
from opsconductor.services import temporal_schedules
from opsconductor.services.schedules import hold_all

logger = logging.getLogger(__name__)

# How long a reconcile waits for another (or for a change in flight) before giving up.
LOCK_WAIT = "60s"
# At API start: the first retry comes soon, later ones no more often than this.
RETRY_FIRST_SECONDS = 5.0
RETRY_MAX_SECONDS = 300.0


@dataclass
class ReconcileReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)


async def reconcile(
    sessionmaker: async_sessionmaker[AsyncSession], temporal: Client
) -> ReconcileReport:
    report = ReconcileReport()
    async with unit_of_work(sessionmaker) as session:
        await session.exec(select(func.set_config("lock_timeout", LOCK_WAIT, True)))
        await hold_all(session)
        rows = (await session.exec(select(Schedule))).all()
        wanted = {temporal_schedule_id(row.id) for row in rows}
        for row in rows:
            desired = temporal_schedules.desired(row)
            found = await temporal_schedules.describe(temporal, row.id)
            if found is None:
                await temporal_schedules.put(temporal, row.id, desired)
                report.created.append(temporal_schedule_id(row.id))
                continue
            drift = await temporal_schedules.drift(temporal, found, desired)
            if drift.parts:
                await temporal_schedules.put(temporal, row.id, desired)
                report.updated.append(temporal_schedule_id(row.id))
                logger.info(
                    "schedule put back in step",
                    extra={"schedule_id": str(row.id), "drift": list(drift.parts)},
                )
            else:
                report.unchanged += 1
        for extra in await _ours_on_temporal(temporal):
            if extra not in wanted:
                await temporal_schedules.remove_by_temporal_id(temporal, extra)
                report.deleted.append(extra)
    return report


async def _ours_on_temporal(temporal: Client) -> list[str]:
    """`schedule-*` ids on Temporal. Listing goes through visibility, which may lag a moment
    behind; rows are therefore checked by describing each, and only extras come from here."""
    try:
        listing = await temporal.list_schedules(rpc_timeout=temporal_schedules.RPC_TIMEOUT)
        return [
            entry.id async for entry in listing if entry.id.startswith(TEMPORAL_SCHEDULE_PREFIX)
        ]
    except (RPCError, RuntimeError, OSError) as error:
        raise DependencyUnavailable(f"Temporal did not list its schedules: {error}") from None


async def reconcile_until_done(
    sessionmaker: async_sessionmaker[AsyncSession], temporal: Client
) -> ReconcileReport:
    """At API start, in the background: the API serves meanwhile, and a Temporal (or a
    database) that is not there yet is waited for with growing pauses, not given up on."""
    pause = RETRY_FIRST_SECONDS
    while True:
        try:
            report = await reconcile(sessionmaker, temporal)
        except Exception as error:  # whatever went wrong, the next attempt may succeed
            logger.warning(
                "schedules not reconciled yet; retrying",
                extra={"error": f"{type(error).__name__}: {error}", "retry_in_s": pause},
            )
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_MAX_SECONDS)
            continue
        logger.info(
            "schedules reconciled",
            # Not `created`: that name belongs to every log record.
            extra={
                "schedules_created": report.created,
                "schedules_updated": report.updated,
                "schedules_deleted": report.deleted,
                "schedules_unchanged": report.unchanged,
            },
        )
        return report
