"""`opsconductor migrate | worker | check` as real processes against the session's services."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from opsconductor.contracts.queues import ALL_QUEUES
from opsconductor.schema import head_revision
from tests.e2e.test_up import (
    Command,
    queue_answers,
    run_check,
    user_env,
)
from tests.fixtures.services import _admin, _asyncpg_dsn, with_database

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REPORT_CHARS = 6000


def opsconductor(
    env: dict[str, str], *arguments: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opsconductor", *arguments],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def shown(result: subprocess.CompletedProcess[str]) -> str:
    return (
        f"`{' '.join(map(str, result.args[2:]))}` exited {result.returncode}\n"
        f"--- stdout:\n{result.stdout[-REPORT_CHARS:]}\n"
        f"--- stderr:\n{result.stderr[-REPORT_CHARS:]}"
    )


def log_entries(stderr: str) -> list[dict[str, Any]]:
    """The JSON log lines of a process (other lines are skipped)."""
    entries = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return entries


# --- migrate ---------------------------------------------------------------------------------


@pytest.fixture
async def empty_database_url(postgres_url: str) -> AsyncIterator[str]:
    """A database with nothing in it, not even the schema."""
    name = f"opsconductor_e2e_empty_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    await _admin(postgres_url, f'CREATE DATABASE "{name}"')
    yield with_database(postgres_url, name)
    await _admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def schema_state(url: str) -> tuple[set[str], list[str]]:
    connection = await asyncpg.connect(_asyncpg_dsn(url), timeout=10)
    try:
        tables = await connection.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        versions: list[str] = []
        if any(row["table_name"] == "alembic_version" for row in tables):
            versions = [row[0] for row in await connection.fetch("SELECT * FROM alembic_version")]
        return {row["table_name"] for row in tables}, versions
    finally:
        await connection.close()


async def test_migrate_builds_an_empty_database_and_is_idempotent(
    empty_database_url: str, tmp_path: Path
) -> None:
    assert await schema_state(empty_database_url) == (set(), [])
    env = user_env(
        OPSCONDUCTOR_DATABASE_URL=empty_database_url, OPSCONDUCTOR_DATA_DIR=str(tmp_path / "data")
    )

    first = opsconductor(env, "migrate")
    assert first.returncode == 0, shown(first)
    assert "database schema is up to date" in first.stdout, shown(first)
    tables, versions = await schema_state(empty_database_url)
    assert {"users", "alembic_version"} <= tables, shown(first)
    assert versions == [head_revision()], shown(first)

    again = opsconductor(env, "migrate")
    assert again.returncode == 0, shown(again)
    assert "database schema is up to date" in again.stdout, shown(again)
    assert await schema_state(empty_database_url) == (tables, versions), shown(again)


def test_migrate_without_a_database_says_which_setting_is_missing(tmp_path: Path) -> None:
    result = opsconductor(user_env(OPSCONDUCTOR_DATA_DIR=str(tmp_path / "data")), "migrate")
    assert result.returncode == 2, shown(result)
    assert "OPSCONDUCTOR_DATABASE_URL" in result.stderr, shown(result)
    assert "Traceback" not in result.stderr, shown(result)


# --- worker and check ------------------------------------------------------------------------


async def test_worker_serves_its_queues_and_check_reports_the_others(
    database_url: str, temporal_address: str, fresh_namespace: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    env = user_env(
        OPSCONDUCTOR_DATA_DIR=str(data_dir),
        OPSCONDUCTOR_DATABASE_URL=database_url,
        OPSCONDUCTOR_TEMPORAL_ADDRESS=temporal_address,
        OPSCONDUCTOR_TEMPORAL_NAMESPACE=fresh_namespace,
        # Given, so nothing is generated into the data folder; `check` needs the same master
        # key as the worker to read the encrypted payloads.
        OPSCONDUCTOR_MASTER_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        OPSCONDUCTOR_SECRET_KEY=secrets.token_urlsafe(32),
    )
    served = ["orchestration", "ssh", "http"]
    worker = Command(
        tmp_path,
        "worker",
        ["worker", *(argument for queue in served for argument in ("--queue", queue))],
        env,
    )

    def logged(message: str) -> list[dict[str, Any]]:
        return [entry for entry in log_entries(worker.stderr) if entry.get("message") == message]

    try:
        started = worker.wait_until(
            lambda: logged("worker started"), 30, "logging 'worker started'"
        )
        assert started[0].get("queues") == served, worker.report()

        check = run_check(env, "--wait", "2")
        report = f"{shown(check)}\n{worker.report()}"
        assert check.returncode == 1, report
        assert queue_answers(check.stdout) == {
            queue.value: "ok" if queue.value in served else "FAILED" for queue in ALL_QUEUES
        }, report
        # The queues that answered were answered by this worker.
        for line in check.stdout.splitlines():
            if re.match(r"^\s*\S+\s+ok\b", line):
                assert f"pid {worker.process.pid}" in line, report
        assert "Traceback" not in check.stderr, report

        code = worker.stop(signal.SIGTERM, 30)
        assert logged("worker stopped"), worker.report()
        assert code == 0, worker.report()
        assert "Traceback" not in worker.stderr, worker.report()
        # With the keys configured, the worker wrote nothing to the data folder.
        assert not (data_dir / "keys").exists(), worker.report()
    finally:
        worker.kill()


def test_worker_rejects_an_unknown_queue_with_the_valid_choices(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = opsconductor(
        user_env(OPSCONDUCTOR_DATA_DIR=str(data_dir)), "worker", "--queue", "nonsense"
    )
    assert result.returncode == 2, shown(result)
    assert "nonsense" in result.stderr, shown(result)
    for queue in ALL_QUEUES:
        assert f"'{queue.value}'" in result.stderr, shown(result)
    assert "Traceback" not in result.stderr, shown(result)
    # A usage error stops before anything happens.
    assert not data_dir.exists(), shown(result)
