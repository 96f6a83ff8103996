"""No password, hash or token appears in any answer or log line, except the one-time display."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from opsconductor.logging import ContextFilter, JsonFormatter
from tests.identity_helpers import ADMIN_PASSWORD, api, bearer, execute_sql

pytestmark = pytest.mark.integration


class Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(ContextFilter("api"))
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    root = logging.getLogger()
    collector, level = Collector(), root.level
    root.addHandler(collector)
    root.setLevel(logging.DEBUG)
    yield collector.lines
    root.removeHandler(collector)
    root.setLevel(level)


async def test_secrets_stay_out_of_answers_and_logs(
    http: httpx.AsyncClient, database_url: str, log_lines: list[str]
) -> None:
    answers: list[httpx.Response] = []
    # Where each secret may legitimately be seen once: the answer that hands it out.
    shown_by: dict[str, httpx.Response] = {}

    async def call(method: str, path: str, **kwargs: object) -> httpx.Response:
        response = await http.request(method, api(path), **kwargs)  # type: ignore[arg-type]
        answers.append(response)
        return response

    secrets = {ADMIN_PASSWORD, "user-password-one", "user-password-two", "reset-password-3"}
    signed_in = await call(
        "POST", "/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    pair = signed_in.json()
    for token in pair.values():
        if isinstance(token, str) and token != "bearer":
            shown_by[token] = signed_in
    admin = bearer(pair["access_token"])
    await call("POST", "/auth/login", json={"username": "admin", "password": "typo-password"})

    created = await call(
        "POST",
        "/users",
        headers=admin,
        json={"username": "sam", "email": "s@example.com", "password": "user-password-one"},
    )
    user_id = created.json()["id"]
    user_pair_answer = await call(
        "POST", "/auth/login", json={"username": "sam", "password": "user-password-one"}
    )
    user_pair = user_pair_answer.json()
    shown_by[user_pair["refresh_token"]] = user_pair_answer
    shown_by[user_pair["access_token"]] = user_pair_answer
    refreshed = await call(
        "POST", "/auth/refresh", json={"refresh_token": user_pair["refresh_token"]}
    )
    shown_by[refreshed.json()["refresh_token"]] = refreshed
    shown_by[refreshed.json()["access_token"]] = refreshed
    await call("POST", "/auth/refresh", json={"refresh_token": user_pair["refresh_token"]})

    minted = await call("POST", "/tokens", headers=admin, json={"name": "ci"})
    api_token = minted.json()["token"]
    shown_by[api_token] = minted
    await call("GET", "/auth/me", headers=bearer(api_token))
    await call("GET", "/tokens", headers=admin)

    reset = await call("POST", f"/users/{user_id}/password-reset", headers=admin)
    reset_token = reset.json()["token"]
    shown_by[reset_token] = reset
    await call(
        "POST",
        "/auth/password-reset",
        json={"token": reset_token, "new_password": "user-password-two"},
    )
    await call("PATCH", f"/users/{user_id}", headers=admin, json={"password": "reset-password-3"})
    await call("POST", "/users", headers=admin, json={"username": "bad", "password": "short"})
    await call("GET", "/users", headers=admin)
    await call("GET", "/audit", headers=admin, params={"limit": 500})

    stored = await execute_sql(
        database_url,
        "SELECT password_hash FROM users UNION ALL SELECT token_hash FROM refresh_tokens "
        "UNION ALL SELECT token_hash FROM api_tokens",
    )
    hashes = {row[0] for row in stored}
    assert len(hashes) >= 6

    assert len(log_lines) >= len(answers)  # the access log at least
    log_text = "\n".join(log_lines)
    for secret in secrets | hashes | shown_by.keys():
        assert secret not in log_text
        for answer in answers:
            if shown_by.get(secret) is not answer:
                assert secret not in answer.text, (answer.request.url, answer.text)
