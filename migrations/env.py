"""Alembic environment: migrates the database named by OPSCONDUCTOR_DATABASE_URL, async."""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from opsconductor.config import get_settings
from opsconductor.db import database_url
from opsconductor.models import metadata

config = context.config


def _url() -> str:
    # `opsconductor migrate` and the tests pass the URL in; plain `alembic` reads settings.
    configured = config.attributes.get("database_url")
    return str(configured) if configured else database_url(get_settings())


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_async_engine(_url())
    async with engine.connect() as async_connection:
        await async_connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
