"""Signing in, refreshing, signing out, sessions, and passwords, through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest

from opsconductor.config import Settings
from tests.identity_helpers import (
    ADMIN_PASSWORD,
    PASSWORD,
    Account,
    api,
    assert_problem,
    bearer,
    execute_sql,
    login,
)

pytestmark = pytest.mark.integration


async def test_login_then_me(http: httpx.AsyncClient, viewer: Account) -> None:
    assert viewer.tokens["token_type"] == "bearer"
    assert viewer.tokens["expires_in"] == 15 * 60
    assert viewer.tokens["refresh_token"].startswith("ocr_")

    me = await http.get(api("/auth/me"), headers=viewer.headers)

    assert me.status_code == 200
    body = me.json()
    assert (body["username"], body["role"], body["disabled"]) == ("victor", "viewer", False)
    assert body["last_login_at"] is not None
    assert "password_hash" not in body
    assert "password" not in body


async def test_the_access_token_carries_the_documented_claims(
    viewer: Account, settings: Settings
) -> None:
    assert settings.secret_key is not None
    claims = jwt.decode(
        viewer.tokens["access_token"], settings.secret_key.get_secret_value(), algorithms=["HS256"]
    )
    assert claims["sub"] == viewer.id
    assert claims["role"] == "viewer"
    assert claims["typ"] == "access"
    assert {"sid", "jti", "iat", "exp"} <= claims.keys()
    assert claims["exp"] - claims["iat"] == 15 * 60


async def test_a_form_post_signs_in_too(http: httpx.AsyncClient, admin: Account) -> None:
    response = await http.post(
        api("/auth/login"),
        data={"username": "admin", "password": ADMIN_PASSWORD, "grant_type": "password"},
    )
    assert response.status_code == 200
    assert response.json()["access_token"]


async def test_login_input_errors_name_the_field(http: httpx.AsyncClient) -> None:
    missing = await http.post(api("/auth/login"), json={"username": "admin"})
    body = assert_problem(missing, 422)
    assert [error["path"] for error in body["errors"]] == ["body.password"]

    garbled = await http.post(
        api("/auth/login"), content=b"{not json", headers={"content-type": "application/json"}
    )
    assert assert_problem(garbled, 422)["errors"][0]["path"] == "body"


async def test_unknown_user_and_wrong_password_get_the_same_answer(
    http: httpx.AsyncClient, viewer: Account
) -> None:
    attempts = [
        {"username": "victor", "password": "not-the-password"},
        {"username": "nobody-here", "password": "not-the-password"},
    ]
    answers = [await http.post(api("/auth/login"), json=attempt) for attempt in attempts]

    bodies = [assert_problem(answer, 401) for answer in answers]
    for body in bodies:
        del body["request_id"]
    assert bodies[0] == bodies[1]
    assert answers[0].headers["www-authenticate"] == answers[1].headers["www-authenticate"]


async def test_a_disabled_user_cannot_sign_in_and_their_session_ends(
    http: httpx.AsyncClient, admin: Account, viewer: Account
) -> None:
    disabled = await http.delete(api(f"/users/{viewer.id}"), headers=admin.headers)
    assert disabled.status_code == 204

    assert_problem(await http.get(api("/auth/me"), headers=viewer.headers), 401)
    refused = await http.post(
        api("/auth/login"), json={"username": viewer.username, "password": PASSWORD}
    )
    assert_problem(refused, 401)


async def test_refresh_rotates_the_refresh_token(http: httpx.AsyncClient, viewer: Account) -> None:
    first = viewer.tokens
    response = await http.post(api("/auth/refresh"), json={"refresh_token": first["refresh_token"]})

    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert (await http.get(api("/auth/me"), headers=bearer(second["access_token"]))).is_success
    third = await http.post(api("/auth/refresh"), json={"refresh_token": second["refresh_token"]})
    assert third.status_code == 200


async def test_reusing_a_spent_refresh_token_revokes_the_whole_session(
    http: httpx.AsyncClient, viewer: Account
) -> None:
    stolen = viewer.tokens["refresh_token"]
    rotated = (await http.post(api("/auth/refresh"), json={"refresh_token": stolen})).json()

    replay = await http.post(api("/auth/refresh"), json={"refresh_token": stolen})

    assert_problem(replay, 401)
    # Neither the thief's nor the rightful holder's newer tokens work any more.
    newer = await http.post(api("/auth/refresh"), json={"refresh_token": rotated["refresh_token"]})
    assert_problem(newer, 401)
    for access in (rotated["access_token"], viewer.tokens["access_token"]):
        assert_problem(await http.get(api("/auth/me"), headers=bearer(access)), 401)
    # Other sessions of the same user are untouched.
    fresh = await login(http, viewer.username, viewer.password)
    assert (await http.get(api("/auth/me"), headers=bearer(fresh["access_token"]))).is_success


async def test_malformed_and_unknown_refresh_tokens_are_refused(
    http: httpx.AsyncClient, viewer: Account
) -> None:
    lookup = viewer.tokens["refresh_token"].split("_")[1]
    for token in ("nonsense", "ocr_0123456789abcdef_guess", f"ocr_{lookup}_wrong-secret"):
        response = await http.post(api("/auth/refresh"), json={"refresh_token": token})
        assert_problem(response, 401)
    # A wrong secret for a real lookup must not count as reuse of the real token.
    still = await http.post(
        api("/auth/refresh"), json={"refresh_token": viewer.tokens["refresh_token"]}
    )
    assert still.status_code == 200


async def test_logout_ends_the_session(http: httpx.AsyncClient, viewer: Account) -> None:
    response = await http.post(api("/auth/logout"), headers=viewer.headers)

    assert response.status_code == 204
    assert_problem(await http.get(api("/auth/me"), headers=viewer.headers), 401)
    refresh = await http.post(
        api("/auth/refresh"), json={"refresh_token": viewer.tokens["refresh_token"]}
    )
    assert_problem(refresh, 401)


async def test_own_sessions_are_listed_and_revocable(
    http: httpx.AsyncClient, viewer: Account, operator: Account
) -> None:
    laptop = await login(http, viewer.username, viewer.password)

    listed = await http.get(api("/auth/sessions"), headers=viewer.headers)

    assert listed.status_code == 200
    page = listed.json()
    assert (page["total"], page["limit"], page["offset"]) == (2, 50, 0)
    current = [item for item in page["items"] if item["current"]]
    assert len(current) == 1
    other = next(item for item in page["items"] if not item["current"])

    # Someone else's session is not yours to see or revoke.
    foreign = await http.delete(api(f"/auth/sessions/{other['id']}"), headers=operator.headers)
    assert_problem(foreign, 404)

    revoked = await http.delete(api(f"/auth/sessions/{other['id']}"), headers=viewer.headers)
    assert revoked.status_code == 204
    assert_problem(await http.get(api("/auth/me"), headers=bearer(laptop["access_token"])), 401)
    assert (await http.get(api("/auth/sessions"), headers=viewer.headers)).json()["total"] == 1


async def test_changing_the_password_ends_other_sessions(
    http: httpx.AsyncClient, viewer: Account
) -> None:
    other = await login(http, viewer.username, viewer.password)
    new_password = "a-brand-new-password"

    wrong = await http.post(
        api("/auth/password"),
        headers=viewer.headers,
        json={"current_password": "not-it-at-all", "new_password": new_password},
    )
    assert assert_problem(wrong, 422)["errors"][0]["path"] == "body.current_password"
    short = await http.post(
        api("/auth/password"),
        headers=viewer.headers,
        json={"current_password": viewer.password, "new_password": "short"},
    )
    assert assert_problem(short, 422)["errors"][0]["path"] == "body.new_password"

    changed = await http.post(
        api("/auth/password"),
        headers=viewer.headers,
        json={"current_password": viewer.password, "new_password": new_password},
    )

    assert changed.status_code == 204
    assert (await http.get(api("/auth/me"), headers=viewer.headers)).is_success
    assert_problem(await http.get(api("/auth/me"), headers=bearer(other["access_token"])), 401)
    old = await http.post(
        api("/auth/login"), json={"username": viewer.username, "password": viewer.password}
    )
    assert_problem(old, 401)
    await login(http, viewer.username, new_password)


async def test_an_admin_forces_a_password_reset(
    http: httpx.AsyncClient, admin: Account, viewer: Account
) -> None:
    issued = await http.post(api(f"/users/{viewer.id}/password-reset"), headers=admin.headers)

    assert issued.status_code == 201
    reset = issued.json()
    assert reset["token"].startswith("ocp_")
    expires = datetime.fromisoformat(reset["expires_at"])
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(hours=24)
    # Issuing the reset ends the user's sessions.
    assert_problem(await http.get(api("/auth/me"), headers=viewer.headers), 401)

    new_password = "reset-to-something-new"
    redeemed = await http.post(
        api("/auth/password-reset"), json={"token": reset["token"], "new_password": new_password}
    )
    assert redeemed.status_code == 204
    await login(http, viewer.username, new_password)

    # One time only.
    again = await http.post(
        api("/auth/password-reset"), json={"token": reset["token"], "new_password": new_password}
    )
    assert assert_problem(again, 422)["errors"][0]["path"] == "body.token"


async def test_an_expired_reset_token_is_refused(
    http: httpx.AsyncClient, admin: Account, viewer: Account, database_url: str
) -> None:
    issued = await http.post(api(f"/users/{viewer.id}/password-reset"), headers=admin.headers)
    token = issued.json()["token"]
    await execute_sql(
        database_url,
        "UPDATE users SET reset_expires_at = now() - interval '1 minute' WHERE id = :id",
        id=viewer.id,
    )

    expired = await http.post(
        api("/auth/password-reset"), json={"token": token, "new_password": "never-gets-set-now"}
    )
    assert_problem(expired, 422)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda token, key: token[:-4] + "AAAA", id="tampered"),
        pytest.param(
            lambda token, key: jwt.encode(
                {**jwt.decode(token, key, algorithms=["HS256"]), "typ": "refresh"},
                key,
                algorithm="HS256",
            ),
            id="wrong-type",
        ),
        pytest.param(
            lambda token, key: jwt.encode(
                {**jwt.decode(token, key, algorithms=["HS256"]), "exp": 1}, key, algorithm="HS256"
            ),
            id="expired",
        ),
        pytest.param(
            lambda token, key: jwt.encode(
                jwt.decode(token, key, algorithms=["HS256"]),
                "another-key-of-a-decent-length-32b",
                algorithm="HS256",
            ),
            id="foreign-key",
        ),
    ],
)
async def test_bad_access_tokens_are_refused(
    http: httpx.AsyncClient, viewer: Account, settings: Settings, mangle: object
) -> None:
    assert settings.secret_key is not None
    assert callable(mangle)
    token = mangle(viewer.tokens["access_token"], settings.secret_key.get_secret_value())

    assert_problem(await http.get(api("/auth/me"), headers=bearer(token)), 401)
