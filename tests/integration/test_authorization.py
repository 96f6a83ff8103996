"""Every route declares one permission, demands authentication, and viewers change nothing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from opsconductor.models.user import Role
from opsconductor.security.rbac import ROLE_PERMISSIONS, Permission
from tests.identity_helpers import Account, api, assert_problem, bearer

pytestmark = pytest.mark.integration

PUBLIC = frozenset(
    {
        ("GET", "/health"),
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/refresh"),
        ("POST", "/api/v1/auth/password-reset"),
        # Answers the same whoever it names, and is throttled (test_password_forgot.py).
        ("POST", "/api/v1/auth/forgot-password"),
        # Authenticated by the trigger's own secret, not a sign-in (test_triggers_api.py).
        ("POST", "/hooks/{id}"),
    }
)
DOCS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    permissions: tuple[str, ...]

    def url(self) -> str:
        return self.path.replace("{id}", str(uuid.uuid4()))

    @property
    def public(self) -> bool:
        return (self.method, self.path) in PUBLIC


def _operations(app: FastAPI) -> list[Operation]:
    """Every operation in the OpenAPI document, with the permissions it declares there."""
    return [
        Operation(
            method.upper(),
            path,
            tuple(
                scope
                for requirement in operation.get("security", [])
                for scopes in requirement.values()
                for scope in scopes
            ),
        )
        for path, item in app.openapi()["paths"].items()
        for method, operation in item.items()
        if path not in DOCS
    ]


async def test_every_route_declares_exactly_one_permission(app: FastAPI) -> None:
    operations = _operations(app)
    assert len(operations) >= 19
    for operation in operations:
        if operation.public:
            assert operation.permissions == (), operation
        else:
            assert len(operation.permissions) == 1, operation
            Permission(operation.permissions[0])


async def test_every_route_but_the_public_ones_requires_authentication(
    http: httpx.AsyncClient, app: FastAPI
) -> None:
    operations = _operations(app)
    assert {(op.method, op.path) for op in operations} >= PUBLIC
    for operation in operations:
        if operation.public:
            continue
        for headers in ({}, bearer("not-a-token")):
            response = await http.request(operation.method, operation.url(), headers=headers)
            assert_problem(response, 401)
            assert response.headers["www-authenticate"] == "Bearer", operation


async def test_a_viewer_can_change_nothing_but_their_own_account(
    http: httpx.AsyncClient, app: FastAPI, viewer: Account
) -> None:
    # Only the own-account permission lets a viewer send anything but a read.
    assert {p for p in ROLE_PERMISSIONS[Role(viewer.role)] if not p.endswith(":read")} == {
        Permission.account
    }
    # An API token, so that walking past POST /auth/logout does not end the walk.
    minted = await http.post(api("/tokens"), headers=viewer.headers, json={"name": "walk"})
    headers = bearer(minted.json()["token"])
    mutations = [op for op in _operations(app) if op.method != "GET" and not op.public]
    refused = []
    for operation in mutations:
        response = await http.request(operation.method, operation.url(), headers=headers)
        # The codec endpoints are POSTs that only read (they decode what the Web UI shows).
        if operation.permissions == (Permission.account,) or operation.permissions[0].endswith(
            ":read"
        ):
            assert response.status_code != 403, operation
            assert response.status_code < 500, operation
        else:
            assert_problem(response, 403)
            refused.append(operation.path)
    assert "/api/v1/users" in refused


ROLE_MATRIX = {
    # (method, path): roles allowed
    ("GET", "/users"): {"admin", "operator", "viewer"},
    ("GET", "/users/{id}"): {"admin", "operator", "viewer"},
    ("POST", "/users"): {"admin"},
    ("PATCH", "/users/{id}"): {"admin"},
    ("DELETE", "/users/{id}"): {"admin"},
    ("POST", "/users/{id}/password-reset"): {"admin"},
    ("GET", "/audit"): {"admin"},
    ("GET", "/tokens"): {"admin", "operator", "viewer"},
    ("POST", "/tokens"): {"admin", "operator", "viewer"},
    ("DELETE", "/tokens/{id}"): {"admin", "operator", "viewer"},
    ("GET", "/auth/me"): {"admin", "operator", "viewer"},
    ("GET", "/auth/sessions"): {"admin", "operator", "viewer"},
    ("DELETE", "/auth/sessions/{id}"): {"admin", "operator", "viewer"},
    ("POST", "/auth/password"): {"admin", "operator", "viewer"},
}


@pytest.mark.parametrize("role", ["admin", "operator", "viewer"])
async def test_each_role_against_each_route_family(
    http: httpx.AsyncClient, app: FastAPI, accounts: dict[str, Account], role: str
) -> None:
    account = accounts[role]
    target = {"/users/{id}": accounts["viewer"].id}
    for (method, path), allowed in ROLE_MATRIX.items():
        url = api(path.replace("{id}", target.get(path, str(uuid.uuid4()))))
        # A harmless body: valid enough to pass authorization, never a real change.
        response = await http.request(method, url, headers=account.headers, json={})
        if role in allowed:
            assert response.status_code != 403, (role, method, path, response.text)
        else:
            assert_problem(response, 403)
    # Every family in the matrix is a family the app really serves.
    served = {(op.method, op.path) for op in _operations(app)}
    assert {(method, api(path)) for method, path in ROLE_MATRIX} <= served
