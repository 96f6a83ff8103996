"""What the API does outside any request: bringing Temporal's schedules in step with the
schedule rows when it starts, and run rows in step with their workflows at start and then
periodically. A background loop is the opener of its own units of work (the transaction rule,
db.py); the work itself is a service (services/schedule_reconciler.py,
services/run_reconciler.py)."""

import asyncio
import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from opsconductor.config import Settings
from opsconductor.db import unit_of_work
from opsconductor.services.run_reconciler import RunReconcileReport, reconcile_runs
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


async def reconcile_runs_once(
    sessionmaker: async_sessionmaker[AsyncSession],
    temporal: Client,
    grace: timedelta,
    console_url: str,
) -> RunReconcileReport:
    async with unit_of_work(sessionmaker) as session:
        return await reconcile_runs(session, temporal, grace, console_url)


async def reconcile_runs_forever(
    sessionmaker: async_sessionmaker[AsyncSession], temporal: Client, settings: Settings
) -> None:
    """A pass at API start, then one every interval; a pass that fails (Temporal or the
    database away) is logged and the next one tries again. Replicas take turns (the lock)."""
    grace = timedelta(seconds=settings.run_reconcile_grace_seconds)
    while True:
        try:
            report = await reconcile_runs_once(sessionmaker, temporal, grace, settings.public_url)
        except Exception as error:  # whatever went wrong, the next pass may succeed
            logger.warning(
                "runs not reconciled this time",
                extra={"error": f"{type(error).__name__}: {error}"},
            )
        else:
            if report.started or report.ended:
                logger.info(
                    "runs reconciled",
                    extra={
                        "runs_checked": report.checked,
                        "runs_started": [str(run_id) for run_id in report.started],
                        "runs_ended": {str(k): v.value for k, v in report.ended.items()},
                    },
                )
        await asyncio.sleep(settings.run_reconcile_interval_seconds)
