"""Credentials and targets through the API, for the vault, inventory and SSH tests."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from tests.fixtures.sshd import LoopbackSshd
from tests.identity_helpers import api


async def post_ok(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], body: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(api(path), headers=headers, json=body)
    assert response.status_code in (200, 201), response.text
    answer: dict[str, Any] = response.json()
    return answer


def key_credential(sshd: LoopbackSshd, name: str = "sshd-key") -> dict[str, Any]:
    return {
        "name": name,
        "kind": "ssh_key",
        "username": sshd.username,
        "secret": {"private_key": sshd.client_key_text},
    }


def password_credential(sshd: LoopbackSshd, name: str = "sshd-password") -> dict[str, Any]:
    return {
        "name": name,
        "kind": "ssh_password",
        "username": sshd.username,
        "secret": {"password": sshd.password},
    }


def sshd_target(sshd: LoopbackSshd, credential_id: str, name: str = "loopback") -> dict[str, Any]:
    return {
        "name": name,
        "address": sshd.host,
        "port": sshd.port,
        "protocol": "ssh",
        "credential_id": credential_id,
        "os": "debian",
        "tags": {"env": "test"},
    }


async def planted_secret(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    name: str,
    granted_to: list[str] | None = None,
) -> str:
    """A credential of kind secret with a fresh, recognisable value, granted to the roles
    given (none: admins only); the value."""
    value = "planted-" + secrets.token_hex(8)
    credential = await post_ok(
        client,
        "/credentials",
        headers,
        {"name": name, "kind": "secret", "secret": {"value": value}},
    )
    if granted_to:
        await grant(client, headers, credential["id"], roles=granted_to)
    return value


async def grant(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    credential_id: str,
    users: list[str] | None = None,
    roles: list[str] | None = None,
) -> dict[str, Any]:
    """Replaces who besides admins may use the credential (none: admins only)."""
    response = await client.put(
        api(f"/credentials/{credential_id}/grants"),
        headers=admin_headers,
        json={"users": users or [], "roles": roles or []},
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def shared_credential(
    client: httpx.AsyncClient, admin_headers: dict[str, str], body: dict[str, Any]
) -> dict[str, Any]:
    """A credential an admin creates and grants to operators, as one sharing a fleet's login
    does (a new credential is usable by admins only)."""
    credential = await post_ok(client, "/credentials", admin_headers, body)
    await grant(client, admin_headers, credential["id"], roles=["operator"])
    return credential
