"""API tokens: shown once, hashed at rest, capped at the owner's role, revocable."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from tests.identity_helpers import Account, api, assert_problem, bearer, execute_sql

pytestmark = pytest.mark.integration


async def _mint(client: httpx.AsyncClient, owner: Account, **body: object) -> httpx.Response:
    return await client.post(api("/tokens"), headers=owner.headers, json={"name": "ci", **body})


async def test_a_token_is_shown_once_works_and_records_its_use(
    http: httpx.AsyncClient, operator: Account, database_url: str
) -> None:
    response = await _mint(http, operator)

    assert response.status_code == 201
    created = response.json()
    token = created["token"]
    assert token.startswith("oct_")
    assert (created["role"], created["last_used_at"]) == ("operator", None)

    me = await http.get(api("/auth/me"), headers=bearer(token))
    assert me.json()["username"] == operator.username

    listed = (await http.get(api("/tokens"), headers=operator.headers)).json()
    assert listed["total"] == 1
    assert "token" not in listed["items"][0]
    assert "token_hash" not in listed["items"][0]
    assert listed["items"][0]["last_used_at"] is not None

    stored = await execute_sql(database_url, "SELECT lookup, token_hash FROM api_tokens")
    lookup, secret = token.removeprefix("oct_").split("_", 1)
    assert stored == [(lookup, hashlib.sha256(secret.encode()).hexdigest())]


async def test_a_token_role_is_capped_at_the_owners(
    http: httpx.AsyncClient, viewer: Account, operator: Account
) -> None:
    refused = await _mint(http, viewer, role="operator")
    body = assert_problem(refused, 422)
    assert body["errors"][0]["path"] == "body.role"

    lower = await _mint(http, operator, role="viewer")
    assert lower.json()["role"] == "viewer"
    # A viewer-role token of an operator can only do what a viewer can.
    denied = await http.post(
        api("/tokens"),
        headers=bearer(lower.json()["token"]),
        json={"name": "x", "role": "operator"},
    )
    assert_problem(denied, 422)


async def test_a_revoked_token_stops_working(http: httpx.AsyncClient, viewer: Account) -> None:
    created = (await _mint(http, viewer)).json()

    revoked = await http.delete(api(f"/tokens/{created['id']}"), headers=viewer.headers)

    assert revoked.status_code == 204
    assert_problem(await http.get(api("/auth/me"), headers=bearer(created["token"])), 401)
    assert (await http.get(api("/tokens"), headers=viewer.headers)).json()["total"] == 0


async def test_only_the_owner_or_an_admin_revokes_a_token(
    http: httpx.AsyncClient, admin: Account, operator: Account, viewer: Account
) -> None:
    created = (await _mint(http, viewer)).json()

    other = await http.delete(api(f"/tokens/{created['id']}"), headers=operator.headers)
    assert_problem(other, 404)
    by_admin = await http.delete(api(f"/tokens/{created['id']}"), headers=admin.headers)
    assert by_admin.status_code == 204


async def test_a_disabled_or_demoted_owner_limits_the_token(
    http: httpx.AsyncClient, admin: Account, operator: Account
) -> None:
    token = (await _mint(http, operator)).json()["token"]

    await http.patch(api(f"/users/{operator.id}"), headers=admin.headers, json={"role": "viewer"})
    demoted = await http.post(
        api("/tokens"), headers=bearer(token), json={"name": "x", "role": "operator"}
    )
    assert_problem(demoted, 422)

    await http.delete(api(f"/users/{operator.id}"), headers=admin.headers)
    assert_problem(await http.get(api("/auth/me"), headers=bearer(token)), 401)


async def test_logout_with_an_api_token_is_a_clear_error(
    http: httpx.AsyncClient, viewer: Account
) -> None:
    token = (await _mint(http, viewer)).json()["token"]
    assert_problem(await http.post(api("/auth/logout"), headers=bearer(token)), 400)


async def test_garbage_tokens_are_refused(http: httpx.AsyncClient, viewer: Account) -> None:
    token = (await _mint(http, viewer)).json()["token"]
    for bad in ("oct_", "oct_nolookup", token[:-2] + "xx", "oct_0000000000000000_secret"):
        assert_problem(await http.get(api("/auth/me"), headers=bearer(bad)), 401)
