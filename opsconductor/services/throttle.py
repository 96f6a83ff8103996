"""Failed sign-ins counted per username and per client address, in fixed windows.

The counters live in PostgreSQL so that every API replica enforces the same limit. A failure
is counted in its own transaction because the failed sign-in's own work is rolled back.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Table, case, delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.config import Settings
from opsconductor.db import side_transaction
from opsconductor.errors import TooManyRequests
from opsconductor.models.throttle import LoginThrottle


@dataclass(frozen=True, slots=True)
class Counter:
    key: str
    limit: int


def counters_for(settings: Settings, username: str, address: str | None) -> list[Counter]:
    # Counted whether or not the user exists, so the limit itself reveals nothing.
    counters = [Counter(f"user:{username.lower()}", settings.login_max_failures)]
    if address:
        counters.append(Counter(f"address:{address}", settings.login_max_failures_per_address))
    return counters


async def ensure_allowed(
    session: AsyncSession,
    counters: list[Counter],
    window: timedelta,
    now: datetime,
    refusal: str = "too many failed sign-in attempts; try again later",
) -> None:
    limits = {counter.key: counter.limit for counter in counters}
    rows = await session.exec(select(LoginThrottle).where(col(LoginThrottle.key).in_(limits)))
    waits = [
        (row.window_started_at + window - now).total_seconds()
        for row in rows
        if row.failures >= limits[row.key] and row.window_started_at + window > now
    ]
    if waits:
        raise TooManyRequests(refusal, math.ceil(max(waits)))


async def count_failure(
    sessionmaker: async_sessionmaker[AsyncSession],
    counters: list[Counter],
    window: timedelta,
    now: datetime,
) -> None:
    table: Table = LoginThrottle.__table__  # type: ignore[attr-defined]
    window_over = table.c.window_started_at <= now - window
    async with side_transaction(sessionmaker) as session:
        for counter in counters:
            # One atomic statement, so concurrent failures on several replicas all count.
            statement = (
                insert(table)
                .values(key=counter.key, failures=1, window_started_at=now)
                .on_conflict_do_update(
                    index_elements=[table.c.key],
                    set_={
                        "failures": case((window_over, 1), else_=table.c.failures + 1),
                        "window_started_at": case(
                            (window_over, now), else_=table.c.window_started_at
                        ),
                    },
                )
            )
            await session.exec(statement)


async def forget(session: AsyncSession, counter: Counter) -> None:
    await session.exec(delete(LoginThrottle).where(col(LoginThrottle.key) == counter.key))
