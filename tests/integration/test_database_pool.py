"""The pool replaces a connection PostgreSQL closed (a restart, a terminated backend) instead of
handing it to the next request, without a round trip per checkout."""

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from opsconductor.db import create_engine
from tests.conftest import make_settings
from tests.identity_helpers import execute_sql

pytestmark = pytest.mark.integration


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
