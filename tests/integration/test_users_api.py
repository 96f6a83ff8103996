"""User administration through the API."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.identity_helpers import Account, api, assert_problem, create_user, login

pytestmark = pytest.mark.integration


async def test_an_admin_creates_lists_reads_and_updates_users(
    http: httpx.AsyncClient, admin: Account
) -> None:
    created = await create_user(http, admin.headers, "ursula", "operator")

    listed = await http.get(api("/users"), headers=admin.headers, params={"limit": 1})
    assert listed.status_code == 200
    page = listed.json()
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (2, 1, 0, 1)
    assert page["items"][0]["username"] == "admin"

    read = await http.get(api(f"/users/{created.id}"), headers=admin.headers)
    assert read.json()["role"] == "operator"

    updated = await http.patch(
        api(f"/users/{created.id}"),
        headers=admin.headers,
        json={"role": "viewer", "email": "ursula@example.org"},
    )
    assert updated.status_code == 200
    assert (updated.json()["role"], updated.json()["email"]) == ("viewer", "ursula@example.org")
    # The role is read from the user on every request, so the demotion applies at once.
    me = await http.get(api("/auth/me"), headers=created.headers)
    assert me.json()["role"] == "viewer"
    assert_problem(
        await http.post(api(f"/users/{created.id}/password-reset"), headers=created.headers), 403
    )


async def test_an_admin_sets_a_password_which_ends_the_users_sessions(
    http: httpx.AsyncClient, admin: Account, viewer: Account
) -> None:
    response = await http.patch(
        api(f"/users/{viewer.id}"), headers=admin.headers, json={"password": "set-by-the-admin"}
    )

    assert response.status_code == 200
    assert_problem(await http.get(api("/auth/me"), headers=viewer.headers), 401)
    await login(http, viewer.username, "set-by-the-admin")


async def test_user_input_errors_name_the_field(http: httpx.AsyncClient, admin: Account) -> None:
    cases = {
        "body.username": {"username": "Not Valid!", "email": "a@example.com", "password": "x" * 12},
        "body.email": {"username": "valid", "email": "not-an-email", "password": "x" * 12},
        "body.password": {"username": "valid", "email": "a@example.com", "password": "short"},
        "body.role": {
            "username": "valid",
            "email": "a@example.com",
            "password": "x" * 12,
            "role": "superuser",
        },
    }
    for path, body in cases.items():
        response = await http.post(api("/users"), headers=admin.headers, json=body)
        assert [error["path"] for error in assert_problem(response, 422)["errors"]] == [path]

    bad_id = await http.get(api("/users/not-a-uuid"), headers=admin.headers)
    assert assert_problem(bad_id, 422)["errors"][0]["path"] == "path.id"
    null_role = await http.patch(
        api(f"/users/{admin.id}"), headers=admin.headers, json={"email": None}
    )
    assert assert_problem(null_role, 422)["errors"][0]["path"] == "body.email"


async def test_duplicates_and_missing_users(http: httpx.AsyncClient, admin: Account) -> None:
    duplicate = await http.post(
        api("/users"),
        headers=admin.headers,
        json={"username": "admin", "email": "b@example.com", "password": "x" * 12},
    )
    assert_problem(duplicate, 409)
    missing = uuid.uuid4()
    assert_problem(await http.get(api(f"/users/{missing}"), headers=admin.headers), 404)
    assert_problem(await http.delete(api(f"/users/{missing}"), headers=admin.headers), 404)


async def test_the_last_enabled_admin_cannot_be_removed(
    http: httpx.AsyncClient, admin: Account
) -> None:
    demote = await http.patch(
        api(f"/users/{admin.id}"), headers=admin.headers, json={"role": "operator"}
    )
    assert_problem(demote, 409)
    assert_problem(await http.delete(api(f"/users/{admin.id}"), headers=admin.headers), 409)

    second = await create_user(http, admin.headers, "ada", "admin")
    assert (await http.delete(api(f"/users/{admin.id}"), headers=second.headers)).status_code == 204
    listed = await http.get(api(f"/users/{admin.id}"), headers=second.headers)
    assert listed.json()["disabled"] is True


async def test_a_user_edits_their_own_profile_and_nothing_else(
    http: httpx.AsyncClient, admin: Account, viewer: Account
) -> None:
    changed = await http.patch(
        api("/auth/me"),
        headers=viewer.headers,
        json={"display_name": "Victor V.", "email": "victor@example.org"},
    )
    assert changed.status_code == 200, changed.text
    me = (await http.get(api("/auth/me"), headers=viewer.headers)).json()
    assert (me["display_name"], me["email"], me["role"]) == (
        "Victor V.",
        "victor@example.org",
        "viewer",
    )
    listed = (await http.get(api(f"/users/{viewer.id}"), headers=admin.headers)).json()
    assert listed["display_name"] == "Victor V."
    # An admin may set it too, as the console's user page does.
    renamed = await http.patch(
        api(f"/users/{viewer.id}"), headers=admin.headers, json={"display_name": "Vic"}
    )
    assert renamed.json()["display_name"] == "Vic"

    # The role is not a profile field: it is ignored, never applied.
    await http.patch(api("/auth/me"), headers=viewer.headers, json={"role": "admin"})
    assert (await http.get(api("/auth/me"), headers=viewer.headers)).json()["role"] == "viewer"

    for body, path in (
        ({"email": "not-an-email"}, "body.email"),
        ({"display_name": None}, "body.display_name"),
        ({"display_name": "x" * 129}, "body.display_name"),
    ):
        problem = assert_problem(
            await http.patch(api("/auth/me"), headers=viewer.headers, json=body), 422
        )
        assert [error["path"] for error in problem["errors"]] == [path], body

    audit = await http.get(
        api("/audit"), headers=admin.headers, params={"action": "user.profile_update"}
    )
    rows = [row for row in audit.json()["items"] if row["outcome"] == "success"]
    assert [(row["resource_id"], row["detail"]["fields"]) for row in rows] == [
        (viewer.id, []),
        (viewer.id, ["display_name", "email"]),
    ]
