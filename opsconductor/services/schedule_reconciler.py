"""Brings Temporal's schedules in step with the schedule rows.

Missing `schedule-<id>` are created, changed ones put back, and `schedule-*` without a row
deleted. It holds the schedules' advisory lock exclusively while it works, so replicas
starting together take turns (the second finds nothing to do) and no API change is half made
while it looks. The lock is the caller's transaction's: whoever opens the unit of work (the
API's start, api/background.py; `opsconductor schedules reconcile`) runs it and commits.
"""

import logging
from dataclasses import dataclass, field

from sqlalchemy import func
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError

from opsconductor.contracts.schedules import TEMPORAL_SCHEDULE_PREFIX, temporal_schedule_id
from opsconductor.errors import DependencyUnavailable
from opsconductor.models.schedule import Schedule
from opsconductor.services import temporal_schedules
from opsconductor.services.schedules import hold_all

logger = logging.getLogger(__name__)

# How long a reconcile waits for another (or for a change in flight) before giving up.
LOCK_WAIT = "60s"


@dataclass
class ReconcileReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)


async def reconcile_schedules(session: AsyncSession, temporal: Client) -> ReconcileReport:
    """One pass, in the caller's unit of work (which holds the lock until it ends)."""
    report = ReconcileReport()
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
