"""The schema is whatever the migrations make, and they run both ways."""

import asyncio

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from opsconductor.schema import alembic_config, head_revision

pytestmark = pytest.mark.integration


async def current_revision(url: str) -> str | None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
            if "alembic_version" not in tables:
                return None
            result = await connection.execute(text("SELECT version_num FROM alembic_version"))
            return result.scalar_one_or_none()
    finally:
        await engine.dispose()


async def test_each_test_database_is_at_the_newest_migration(database_url: str) -> None:
    assert await current_revision(database_url) == head_revision()


async def test_constraints_follow_the_naming_convention(database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(
                lambda sync: (
                    inspect(sync).get_pk_constraint("users")["name"],
                    [index["name"] for index in inspect(sync).get_indexes("users")],
                )
            )
    finally:
        await engine.dispose()
    assert names[0] == "pk_users"
    assert "ix_users_username" in names[1]


async def test_migrations_downgrade_to_nothing_and_upgrade_again(database_url: str) -> None:
    config = alembic_config(database_url)
    await asyncio.to_thread(command.downgrade, config, "base")
    assert await current_revision(database_url) is None
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await current_revision(database_url) == head_revision()
