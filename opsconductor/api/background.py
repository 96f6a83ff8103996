"""What the API does outside any request: bringing Temporal's schedules in step with the
schedule rows when it starts. A background loop is the opener of its own units of work (the
transaction rule, db.py); the work itself is a service (services/schedule_reconciler.py)."""

import asyncio
import logging

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from opsconductor.db import unit_of_work
from opsconductor.services.schedule_reconciler import ReconcileReport, reconcile_schedules

logger = logging.getLogger(__name__)

# At API start: the first retry comes soon, later ones no more often than this.
RETRY_FIRST_SECONDS = 5.0
RETRY_MAX_SECONDS = 300.0


async def reconcile(
    sessionmaker: async_sessionmaker[AsyncSession], temporal: Client
) -> ReconcileReport:
    """One reconcile in a unit of work of its own (also `opsconductor schedules reconcile`)."""
    async with unit_of_work(sessionmaker) as session:
        return await reconcile_schedules(session, temporal)


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
