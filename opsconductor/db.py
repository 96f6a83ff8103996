"""The async engine, the per-request session and the database health check."""

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic_core
from sqlalchemy import Executable, event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.config import Settings
from opsconductor.errors import ConfigurationError, DependencyUnavailable, LaunchUncertain

Result = TypeVar("Result")


def database_url(settings: Settings) -> str:
    if settings.database_url is None:
        raise ConfigurationError(
            "OPSCONDUCTOR_DATABASE_URL is not set (`opsconductor up` sets it for the embedded "
            "PostgreSQL; other commands need it)"
        )
    url = settings.database_url
    # Accept the plain form operators paste from elsewhere; we always talk asyncpg.
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+asyncpg://" + url.removeprefix(plain)
    return url


def create_engine(settings: Settings) -> AsyncEngine:
    engine = create_async_engine(
        database_url(settings),
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout_seconds,
        pool_recycle=1800,
        # Never echo bound values (password hashes, token digests) into errors or logs.
        hide_parameters=True,
        json_deserializer=json_value,
    )
    event.listen(engine.sync_engine, "checkout", _replace_if_closed)
    return engine


def json_value(text: str) -> Any:
    """A JSON or JSONB column's value. pydantic-core's parser (Rust) makes the same Python values
    as `json.loads` (big integers, floats, duplicate keys: the last wins) in a fifth of the
    time, which on a page of 50 targets (tags and vars each) was 4 % of the API's time
    (benchmarks/README.md fix 18). It refuses nesting deeper than 200 levels, which PostgreSQL
    stores: those few are read by `json.loads`, as before."""
    try:
        return pydantic_core.from_json(text)
    except ValueError:
        return json.loads(text)


def _replace_if_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """A connection PostgreSQL closed (a restart, a terminated backend) is replaced instead of
    failing a request. asyncpg notices the closed socket on its own, so this costs no round
    trip, where pool_pre_ping costs three (BEGIN, a query, ROLLBACK) on every checkout: the
    largest database cost of a worker's step (benchmarks/README.md)."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the connection was closed by the server")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: answers are serialised after the commit and must not lazy-load.
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def create_reading_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for API requests that only read (GET, HEAD): no BEGIN and no COMMIT.

    Under PostgreSQL's READ COMMITTED every statement takes its own snapshot, inside a
    transaction or not, so a reading request's page and count see what they saw before; the
    two round trips a transaction adds were a fifth of the API's CPU on a list request
    (benchmarks/README.md, fix 10). What a reading request writes in passing (an API token's
    `last_used_at`) is one statement, committed as it runs. Same pool as `engine`."""
    return create_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"))


# The transaction rule, everywhere: services never commit. Whoever opens the unit of work
# commits it: a request (the `SessionDep` dependency), a CLI command, an activity, a background
# loop of the API (api/background.py). Work that must be kept even when the surrounding unit of
# work is rolled back (a refused login's audit row, the login throttle's counter) goes through
# `side_transaction`, and nothing else opens a committing session of its own.
#
# Two changes reach outside the database and must end the caller's unit of work early; each is
# written once, below, and called by services (routers never commit):
# - `commit_or_undo`: a change also made on Temporal (a schedule) is taken back there if the
#   commit fails;
# - `commit_then_launch`: a workflow that writes to the row it was started for (a run, a scan)
#   is started only after the row is committed; a refused start is recorded on the row in a
#   side transaction.


@asynccontextmanager
async def unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One session per unit of work: committed when the work succeeds, rolled back otherwise."""
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


async def execute_many(
    session: AsyncSession, statement: Executable, rows: Sequence[Mapping[str, Any]]
) -> None:
    """`statement` (an INSERT or an upsert on a Core table, no values of its own) once per row,
    as one executemany. Not `insert(...).values(rows)`: SQLAlchemy builds a multi-row VALUES
    clause anew for each call (a bind parameter per value, ~4 ms for 100 rows of seven columns)
    and compiles it again for each row count (~11 ms), where this statement is compiled once
    for the process and asyncpg sends the rows in one round trip."""
    if rows:
        connection = await session.connection()
        await connection.execute(statement, list(rows))


def side_transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AbstractAsyncContextManager[AsyncSession]:
    """A unit of work beside the caller's, committed on its own: what it writes stays even when
    the caller's transaction is rolled back (the refused login's audit row is the example)."""
    return unit_of_work(sessionmaker)


async def commit_or_undo(session: AsyncSession, undo: Callable[[], Awaitable[None]]) -> None:
    """Commits a change that was also made outside the database (a Temporal schedule); if the
    commit fails, `undo` takes the outside change back, so neither side keeps half of it."""
    try:
        await session.commit()
    except BaseException:
        await undo()
        raise


async def commit_then_launch(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    launch: Callable[[], Awaitable[Result]],
    mark_failed: Callable[[AsyncSession, str], Awaitable[None]],
) -> Result:
    """Commits the caller's unit of work, then launches what writes to the rows it holds (a
    workflow writes to its run or scan row, which must therefore exist first). A launch refused
    with `DependencyUnavailable` is recorded by `mark_failed` in a side transaction, since the
    caller's is about to be rolled back, and the error goes on to the caller. A launch that
    may have happened (`LaunchUncertain`) is not marked: its row stays as committed, for a
    reconciler to settle from what Temporal has."""
    await session.commit()
    try:
        return await launch()
    except LaunchUncertain:
        raise
    except DependencyUnavailable as error:
        async with side_transaction(sessionmaker) as side:
            await mark_failed(side, error.detail)
        raise


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    duration_ms: float
    message: str


async def check_database(engine: AsyncEngine) -> CheckResult:
    started = time.perf_counter()
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (OperationalError, DBAPIError, OSError, TimeoutError) as error:
        return CheckResult(
            "database", False, _elapsed_ms(started), f"unreachable: {type(error).__name__}"
        )
    return CheckResult("database", True, _elapsed_ms(started), "ok")


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
