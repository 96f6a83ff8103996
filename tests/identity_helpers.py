"""Signing in and making users through the API, for the identity tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from opsconductor.api.app import API_PREFIX

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "initial-admin-password"  # what tests/conftest.make_settings configures
PASSWORD = "correct-horse-battery"
PROBLEM = "application/problem+json"


def api(path: str) -> str:
    return f"{API_PREFIX}{path}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(client: httpx.AsyncClient, username: str, password: str) -> dict[str, Any]:
    response = await client.post(
        api("/auth/login"), json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    pair: dict[str, Any] = response.json()
    return pair


@dataclass
class Account:
    id: str
    username: str
    password: str
    role: str
    tokens: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.tokens["access_token"])


async def create_user(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    username: str,
    role: str,
    password: str = PASSWORD,
) -> Account:
    response = await client.post(
        api("/users"),
        headers=admin_headers,
        json={
            "username": username,
            "email": f"{username}@example.com",
            "role": role,
            "password": password,
        },
    )
    assert response.status_code == 201, response.text
    tokens = await login(client, username, password)
    return Account(response.json()["id"], username, password, role, tokens)


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


async def execute_sql(database_url: str, statement: str, **parameters: object) -> list[Any]:
    """Run one statement straight against the test database, bypassing the API."""
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            result = await connection.execute(text(statement), parameters)
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()
