"""Repeated failed sign-ins are throttled per username and per client address."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.identity_helpers import ADMIN_PASSWORD, api, assert_problem, login

pytestmark = pytest.mark.integration

# Long enough that a loaded machine never sees the window slide in the middle of a test; the
# one test that waits for the window to pass sets a short one of its own.
WINDOW_SECONDS = 120
RELEASE_WINDOW_SECONDS = 5


@pytest.fixture
def window() -> int:
    return WINDOW_SECONDS


@pytest.fixture
def settings_overrides(window: int) -> dict[str, object]:
    return {
        "login_max_failures": 3,
        "login_max_failures_per_address": 5,
        "login_window_seconds": window,
    }


async def _fail(client: httpx.AsyncClient, username: str) -> httpx.Response:
    return await client.post(
        api("/auth/login"), json={"username": username, "password": "wrong-password"}
    )


@pytest.mark.parametrize("window", [RELEASE_WINDOW_SECONDS])
async def test_the_username_throttle_engages_and_releases(
    http: httpx.AsyncClient, window: int
) -> None:
    for _ in range(3):
        assert_problem(await _fail(http, "admin"), 401)

    throttled = await http.post(
        api("/auth/login"), json={"username": "admin", "password": ADMIN_PASSWORD}
    )

    body = assert_problem(throttled, 429)
    assert body["type"].endswith("/too-many-requests")
    assert 1 <= int(throttled.headers["retry-after"]) <= window

    await asyncio.sleep(window + 0.2)
    await login(http, "admin", ADMIN_PASSWORD)


async def test_unknown_usernames_are_throttled_alike(http: httpx.AsyncClient) -> None:
    for _ in range(3):
        assert_problem(await _fail(http, "ghost"), 401)
    assert_problem(await _fail(http, "ghost"), 429)


async def test_a_successful_sign_in_resets_the_username_count(http: httpx.AsyncClient) -> None:
    for _ in range(2):
        assert_problem(await _fail(http, "admin"), 401)
    await login(http, "admin", ADMIN_PASSWORD)
    for _ in range(2):
        assert_problem(await _fail(http, "admin"), 401)
    await login(http, "admin", ADMIN_PASSWORD)


async def test_the_address_throttle_spans_usernames(http: httpx.AsyncClient) -> None:
    for number in range(5):
        assert_problem(await _fail(http, f"user-{number}"), 401)

    throttled = await http.post(
        api("/auth/login"), json={"username": "admin", "password": ADMIN_PASSWORD}
    )

    assert_problem(throttled, 429)
    assert "retry-after" in throttled.headers
