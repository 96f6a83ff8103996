"""Signed-in accounts of every role, on top of the root conftest's `app` and `http`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from tests.fixtures.ports import free_port
from tests.fixtures.sshd import LoopbackSshd
from tests.identity_helpers import ADMIN_PASSWORD, ADMIN_USERNAME, Account, create_user, login
from tests.vault_helpers import grant, key_credential, post_ok, sshd_target


@pytest.fixture
async def admin(http: httpx.AsyncClient) -> Account:
    """The bootstrapped first admin, signed in."""
    tokens = await login(http, ADMIN_USERNAME, ADMIN_PASSWORD)
    me = await http.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    return Account(me.json()["id"], ADMIN_USERNAME, ADMIN_PASSWORD, "admin", tokens)


@pytest.fixture
async def operator(http: httpx.AsyncClient, admin: Account) -> Account:
    return await create_user(http, admin.headers, "olivia", "operator")


@pytest.fixture
async def viewer(http: httpx.AsyncClient, admin: Account) -> Account:
    return await create_user(http, admin.headers, "victor", "viewer")


@pytest.fixture
def accounts(admin: Account, operator: Account, viewer: Account) -> dict[str, Account]:
    return {"admin": admin, "operator": operator, "viewer": viewer}


@pytest.fixture
async def loopback(http: httpx.AsyncClient, admin: Account, sshd: LoopbackSshd) -> str:
    """A target on the loopback sshd with a key credential, made through the API; its name.
    Its credential is granted to operators, as an admin sharing a fleet's login does."""
    credential = await post_ok(http, "/credentials", admin.headers, key_credential(sshd))
    await grant(http, admin.headers, credential["id"], roles=["operator"])
    target = await post_ok(http, "/targets", admin.headers, sshd_target(sshd, credential["id"]))
    name: str = target["name"]
    return name


@pytest.fixture
async def served(app: FastAPI, http: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """The app (its lifespan already run by `http`) behind a real HTTP server: the in-process
    transport buffers whole responses, so only a socket shows a stream arriving live."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as over_socket:
        yield over_socket
    server.should_exit = True
    await serving
