"""X-Forwarded-For is believed only from the proxies in OPSCONDUCTOR_FORWARDED_ALLOW_IPS, in a
real `opsconductor api` process (uvicorn, which believes loopback peers unless told not to)."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.fixtures.services import create_test_database, drop_test_database
from tests.process_stack import ApiClient, process_stack

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ATTEMPTS = 25  # above OPSCONDUCTOR_LOGIN_MAX_FAILURES_PER_ADDRESS (20)


@pytest.fixture
async def database_url(postgres_url: str) -> AsyncIterator[str]:
    url = await create_test_database(postgres_url)
    yield url
    await drop_test_database(postgres_url, url)


def failed_logins(url: str) -> list[int]:
    """Wrong passwords for a different username each time (so only the per-address counter can
    trip), each from a different forged address."""
    statuses = []
    with httpx.Client(base_url=f"{url}/api/v1", timeout=30) as client:
        for attempt in range(ATTEMPTS):
            answer = client.post(
                "/auth/login",
                json={"username": f"nobody-{attempt}", "password": "wrong-password-here"},
                headers={"X-Forwarded-For": f"203.0.113.{attempt + 1}"},
            )
            statuses.append(answer.status_code)
    return statuses


def login_addresses(admin: ApiClient) -> set[str | None]:
    audit = admin.ok("GET", "/audit", params={"action": "session.login", "limit": 200})
    return {item["client_address"] for item in audit["items"] if item["outcome"] == "denied"}


async def test_forged_forwarded_for_neither_escapes_the_throttle_nor_reaches_the_audit_log(
    tmp_path: Path, database_url: str, temporal_address: str
) -> None:
    # Served by `opsconductor api --workers 2` (here through OPSCONDUCTOR_API_WORKERS): one
    # supervisor holding the port, two processes serving it; the throttle lives in PostgreSQL,
    # so whichever process answers, the 21st failure from one address is refused.
    with process_stack(
        tmp_path, database_url, temporal_address, OPSCONDUCTOR_API_WORKERS="2"
    ) as stack:
        supervisor = psutil.Process(stack.api.process.pid)
        serving = [
            child
            for child in supervisor.children()
            if "multiprocessing.spawn" in " ".join(child.cmdline())
        ]
        assert len(serving) == 2, stack.report()
        admin = ApiClient(stack.url)  # signed in before the address is throttled
        statuses = failed_logins(stack.url)
        assert statuses[:20] == [401] * 20
        assert statuses[20:] == [429] * 5
        assert login_addresses(admin) == {"127.0.0.1"}
        # A supervisor killed outright takes its processes with it: none keeps the port.
        supervisor.kill()
        _, alive = psutil.wait_procs(serving, timeout=20)
        assert alive == [], stack.report()


async def test_a_named_proxy_is_believed(
    tmp_path: Path, database_url: str, temporal_address: str
) -> None:
    with process_stack(
        tmp_path, database_url, temporal_address, OPSCONDUCTOR_FORWARDED_ALLOW_IPS="127.0.0.1"
    ) as stack:
        admin = ApiClient(stack.url)
        assert failed_logins(stack.url) == [401] * ATTEMPTS
        assert login_addresses(admin) == {f"203.0.113.{n}" for n in range(1, ATTEMPTS + 1)}
