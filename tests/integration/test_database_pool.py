"""The pool replaces a connection PostgreSQL closed (a restart, a terminated backend) instead of
handing it to the next request, without a round trip per checkout; keeps the connections it
opened; and a request that finds them all in use is answered 503, not 500."""

import asyncio
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from opsconductor.db import create_engine
from opsconductor.embedded.postgres import MAX_CONNECTIONS
from tests.conftest import make_settings
from tests.identity_helpers import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    api,
    assert_problem,
    bearer,
    execute_sql,
    login,
)

pytestmark = pytest.mark.integration

BURST = 25  # concurrent requests, fewer than the default pool size (30)


async def test_a_connection_closed_by_the_server_is_replaced_at_checkout(
    database_url: str, tmp_path: Path
) -> None:
    engine = create_engine(make_settings(tmp_path, database_url=database_url))
    try:
        async with engine.connect() as connection:
            first = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        # The second argument makes PostgreSQL wait until that backend has exited.
        await execute_sql(database_url, "SELECT pg_terminate_backend(:pid, 5000)", pid=first)
        await asyncio.sleep(0.1)  # one loop turn for asyncpg to read the closed socket

        async with engine.connect() as connection:
            second = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert second != first
    finally:
        await engine.dispose()


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    # Two connections (the API holds one for its life, to hear of changed identities), waited
    # for half a second: a process at its limit.
    return {"database_pool_size": 2, "database_pool_timeout_seconds": 0.5}


async def test_a_second_burst_of_requests_opens_no_connection(
    database_url: str, tmp_path: Path
) -> None:
    """With the default settings a process keeps every connection it opened: opening one costs
    PostgreSQL a backend and both sides a SCRAM exchange (docs/deployment.md, "Database
    connections"). The old 10 kept and 20 of overflow opened 15 anew for every burst of 25."""
    engine = create_engine(make_settings(tmp_path, database_url=database_url))
    opened: list[object] = []
    event.listen(engine.sync_engine, "connect", lambda connection, _: opened.append(connection))

    async def request() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT pg_sleep(0.05)"))

    try:
        await asyncio.gather(*(request() for _ in range(BURST)))
        assert len(opened) == BURST
        await asyncio.gather(*(request() for _ in range(BURST)))
        assert len(opened) == BURST
    finally:
        await engine.dispose()


async def test_a_request_that_finds_every_connection_in_use_is_answered_503(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    tokens = await login(http, ADMIN_USERNAME, ADMIN_PASSWORD)
    engine: AsyncEngine = app.state.engine
    async with engine.connect() as held:
        await held.execute(text("SELECT 1"))
        busy = await http.get(api("/targets"), headers=bearer(tokens["access_token"]))
    problem = assert_problem(busy, 503)
    assert problem["detail"] == "every database connection is in use; retry shortly"
    assert busy.headers["Retry-After"] == "5"
    # The connection back in the pool, the same request is answered.
    answer = await http.get(api("/targets"), headers=bearer(tokens["access_token"]))
    assert answer.status_code == 200, answer.text


async def test_the_embedded_postgresql_takes_as_many_connections_as_the_compose_one(
    database_url: str,
) -> None:
    # `up` and the tests run the embedded server; ten processes at their pool size fit.
    [(limit,)] = await execute_sql(database_url, "SHOW max_connections")
    assert limit == str(MAX_CONNECTIONS)
