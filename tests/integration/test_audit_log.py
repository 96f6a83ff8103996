"""The audit log: a row for every mutating request and login, queryable, append-only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError

from tests.identity_helpers import Account, api, assert_problem, bearer, execute_sql, login

pytestmark = pytest.mark.integration


async def _events(
    client: httpx.AsyncClient, admin: Account, **filters: Any
) -> list[dict[str, Any]]:
    response = await client.get(
        api("/audit"), headers=admin.headers, params={"limit": 500, **filters}
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def _only(client: httpx.AsyncClient, admin: Account, **filters: Any) -> dict[str, Any]:
    events = await _events(client, admin, **filters)
    assert len(events) == 1, events
    return events[0]


def _expected_outcome(status: int) -> str:
    if status < 400:
        return "success"
    return "denied" if status in {401, 403, 429} else "failure"


async def test_every_mutating_route_leaves_a_row(
    http: httpx.AsyncClient, app: FastAPI, admin: Account
) -> None:
    token = (await http.post(api("/tokens"), headers=admin.headers, json={"name": "w"})).json()
    headers = bearer(token["token"])
    operations = [
        (method.upper(), path, operation)
        for path, item in app.openapi()["paths"].items()
        for method, operation in item.items()
        if path.startswith(api("/")) and method != "get"
    ]
    assert len(operations) >= 12
    for method, path, operation in operations:
        url = path.replace("{id}", str(uuid.uuid4()))
        response = await http.request(method, url, headers=headers, json={})
        # The route's operationId is its audit action.
        event = (await _events(http, admin, action=operation["operationId"]))[0]
        assert event["request_id"] == response.headers["x-request-id"], (method, path)
        assert event["outcome"] == _expected_outcome(response.status_code), (method, path)
        assert event["client_address"] == "127.0.0.1"


async def test_user_administration_is_recorded(
    http: httpx.AsyncClient, admin: Account, viewer: Account
) -> None:
    created = await _only(http, admin, action="user.create")
    assert (created["actor_username"], created["actor_id"]) == ("admin", admin.id)
    assert (created["resource_type"], created["resource_id"]) == ("user", viewer.id)
    assert created["outcome"] == "success"

    await http.patch(
        api(f"/users/{viewer.id}"),
        headers=admin.headers,
        json={"email": "v@example.org", "password": "a-secret-new-password"},
    )
    updated = await _only(http, admin, action="user.update")
    assert updated["detail"] == {"fields": ["email", "password"]}
    assert "a-secret-new-password" not in str(updated)

    reset = await http.post(api(f"/users/{viewer.id}/password-reset"), headers=admin.headers)
    issued = await _only(http, admin, action="user.password_reset")
    assert issued["resource_id"] == viewer.id
    await http.post(
        api("/auth/password-reset"),
        json={"token": reset.json()["token"], "new_password": "redeemed-password"},
    )
    redeemed = await _only(http, admin, action="user.password_reset_redeem")
    assert (redeemed["actor_username"], redeemed["resource_id"]) == ("victor", viewer.id)

    await http.delete(api(f"/users/{viewer.id}"), headers=admin.headers)
    disabled = await _only(http, admin, action="user.disable")
    assert (disabled["resource_id"], disabled["outcome"]) == (viewer.id, "success")


async def test_sign_ins_sessions_and_tokens_are_recorded(
    http: httpx.AsyncClient, admin: Account, viewer: Account
) -> None:
    await http.post(api("/auth/login"), json={"username": "victor", "password": "wrong-one!"})
    await http.post(api("/auth/login"), json={"username": "nobody", "password": "wrong-one!"})
    failed = await _events(http, admin, action="session.login", outcome="denied")
    assert [event["actor_username"] for event in failed] == [None, "victor"]

    second = await login(http, viewer.username, viewer.password)
    signed_in = await _events(
        http, admin, action="session.login", actor="victor", outcome="success"
    )
    assert len(signed_in) == 2
    assert all(event["resource_type"] == "session" for event in signed_in)

    refreshed = await http.post(
        api("/auth/refresh"), json={"refresh_token": second["refresh_token"]}
    )
    assert refreshed.is_success
    await http.post(api("/auth/refresh"), json={"refresh_token": second["refresh_token"]})
    reuse = await _only(http, admin, action="session.refresh", outcome="denied")
    assert reuse["detail"] == {"reason": "refresh token reused", "status": 401}
    assert reuse["actor_username"] == "victor"

    await http.post(
        api("/auth/password"),
        headers=viewer.headers,
        json={"current_password": viewer.password, "new_password": "changed-password-1"},
    )
    assert (await _only(http, admin, action="user.password_change"))["resource_id"] == viewer.id
    await login(http, viewer.username, "changed-password-1")
    sessions = (await http.get(api("/auth/sessions"), headers=viewer.headers)).json()["items"]
    other = next(item["id"] for item in sessions if not item["current"])
    await http.delete(api(f"/auth/sessions/{other}"), headers=viewer.headers)
    assert (await _only(http, admin, action="session.revoke"))["resource_id"] == other

    token = (await http.post(api("/tokens"), headers=viewer.headers, json={"name": "ci"})).json()
    assert (await _only(http, admin, action="token.create"))["resource_id"] == token["id"]
    await http.delete(api(f"/tokens/{token['id']}"), headers=viewer.headers)
    assert (await _only(http, admin, action="token.revoke"))["resource_id"] == token["id"]

    await http.post(api("/auth/logout"), headers=viewer.headers)
    logout = await _only(http, admin, action="session.logout")
    assert (logout["actor_username"], logout["resource_type"]) == ("victor", "session")


async def test_refusals_and_failures_are_recorded(
    http: httpx.AsyncClient, admin: Account, viewer: Account
) -> None:
    await http.post(api("/users"), headers=viewer.headers, json={})
    denied = await _only(http, admin, action="user.create", outcome="denied")
    assert (denied["actor_username"], denied["detail"]) == ("victor", {"status": 403})

    await http.post(api("/users"), json={})
    anonymous = await _events(http, admin, action="user.create", outcome="denied")
    assert anonymous[0]["actor_username"] is None
    assert anonymous[0]["detail"] == {"status": 401}

    missing = uuid.uuid4()
    await http.delete(api(f"/users/{missing}"), headers=admin.headers)
    failed = await _only(http, admin, action="user.disable", outcome="failure")
    assert (failed["resource_id"], failed["detail"]) == (str(missing), {"status": 404})

    await http.post(api("/users"), headers=admin.headers, json={"username": "x"})
    invalid = await _only(http, admin, action="user.create", outcome="failure")
    assert invalid["detail"] == {"status": 422}


async def test_filters_and_paging(http: httpx.AsyncClient, admin: Account, viewer: Account) -> None:
    everything = await http.get(api("/audit"), headers=admin.headers, params={"limit": 2})
    page = everything.json()
    assert (page["limit"], page["offset"], len(page["items"])) == (2, 0, 2)
    assert page["total"] == 3  # two logins and one user.create
    newest_first = [event["occurred_at"] for event in page["items"]]
    assert newest_first == sorted(newest_first, reverse=True)

    by_resource = await _events(http, admin, resource_type="user", resource_id=viewer.id)
    assert [event["action"] for event in by_resource] == ["user.create"]
    future = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert await _events(http, admin, since=future) == []
    assert len(await _events(http, admin, until=future)) == 3
    bad = await http.get(api("/audit"), headers=admin.headers, params={"outcome": "maybe"})
    assert assert_problem(bad, 422)["errors"][0]["path"] == "query.outcome"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET action = 'tampered'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ],
)
async def test_the_database_refuses_to_change_audit_rows(
    http: httpx.AsyncClient, admin: Account, database_url: str, statement: str
) -> None:
    with pytest.raises(DBAPIError, match="append-only"):
        await execute_sql(database_url, statement)
    rows = await execute_sql(
        database_url, "SELECT count(*) FROM audit_log WHERE action = 'tampered'"
    )
    assert rows == [(0,)]
    assert (await execute_sql(database_url, "SELECT count(*) FROM audit_log"))[0][0] >= 1
