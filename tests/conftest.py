"""Session-wide real services (PostgreSQL, Temporal, sshd) and per-test isolation."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from opsconductor.api.app import create_app
from opsconductor.config import Environment, Settings
from opsconductor.contracts.queues import ALL_QUEUES
from opsconductor.db import create_engine, create_sessionmaker
from opsconductor.temporal.client import connect
from opsconductor.worker.main import build_workers
from opsconductor.worker.registry import WorkerResources
from tests.fixtures.http_receiver import HttpReceiver
from tests.fixtures.services import (
    build_template,
    create_test_database,
    drop_test_database,
    postgres_server_url,
    temporal_server_address,
)
from tests.fixtures.smtp_sink import SmtpSink
from tests.fixtures.sshd import LoopbackSshd

IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    if IN_CI and skipped:
        terminalreporter.section("skipped tests fail the run in CI", red=True)
        for report in skipped:
            terminalreporter.write_line(f"SKIPPED {report.nodeid}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if IN_CI and reporter is not None and reporter.stats.get("skipped"):
        # In CI every test must really run: a skip hides a missing service or package.
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_server_url() as url:
        build_template(url)
        yield url


@pytest.fixture(scope="session")
def temporal_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with temporal_server_address(tmp_path_factory.mktemp("temporal")) as address:
        yield address


@pytest.fixture
async def database_url(postgres_url: str) -> AsyncIterator[str]:
    url = await create_test_database(postgres_url)
    yield url
    await drop_test_database(postgres_url, url)


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": Environment.test,
        "data_dir": data_dir,
        "master_key": base64.b64encode(secrets.token_bytes(32)).decode(),
        "secret_key": secrets.token_urlsafe(32),
        "admin_password": "initial-admin-password",
        "log_format": "json",
        # In-process test workers stop at each test's end; a test that failed with a step
        # still running must not wait the production grace (10 minutes) for it.
        "worker_shutdown_grace": "20s",
        **overrides,
    }
    return Settings.model_validate(values)


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """What a test module changes in the settings: override this fixture, not `settings`."""
    return {}


@pytest.fixture
def settings(
    tmp_path: Path, database_url: str, temporal_address: str, settings_overrides: dict[str, object]
) -> Settings:
    return make_settings(
        tmp_path, database_url=database_url, temporal_address=temporal_address, **settings_overrides
    )


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client bound to the app in-process, with its lifespan run around the test."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as http,
    ):
        yield http


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackSshd]:
    with LoopbackSshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    with SmtpSink(username="mailer", password="mail-password") as sink:
        yield sink


@pytest.fixture
async def worker_resources(settings: Settings) -> AsyncIterator[WorkerResources]:
    engine = create_engine(settings)
    yield WorkerResources(settings, create_sessionmaker(engine))
    await engine.dispose()


@pytest.fixture
async def workers(settings: Settings, worker_resources: WorkerResources) -> AsyncIterator[None]:
    """Workers on every task queue, in this process, for the duration of one test."""
    client = await connect(settings)
    async with AsyncExitStack() as stack:
        for worker in build_workers(client, ALL_QUEUES, worker_resources):
            await stack.enter_async_context(worker)
        yield
