"""Credentials through the API: roles, write-only secrets, key checks, sealing at rest."""

import logging
import secrets
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.config import Settings
from opsconductor.models.credential import AccessPurpose
from opsconductor.security.keys import load_process_keys
from opsconductor.services.sealing import keyring_from
from opsconductor.services.vault import (
    CredentialUnavailable,
    Purpose,
    reveal,
)
from tests.fixtures.sshd import LoopbackSshd
from tests.identity_helpers import Account, api, assert_problem, execute_sql
from tests.vault_helpers import grant, key_credential, post_ok, sshd_target

pytestmark = pytest.mark.integration


def planted() -> str:
    return "planted-" + secrets.token_hex(12)


async def test_roles_admin_manages_viewer_and_operator_read(
    http: httpx.AsyncClient, accounts: dict[str, Account]
) -> None:
    body = {"name": "api-token", "kind": "http_bearer", "secret": {"token": planted()}}
    for role in ("operator", "viewer"):
        response = await http.post(api("/credentials"), headers=accounts[role].headers, json=body)
        assert_problem(response, 403)
    created = await post_ok(http, "/credentials", accounts["admin"].headers, body)
    for role in ("viewer", "operator", "admin"):
        listed = await http.get(api("/credentials"), headers=accounts[role].headers)
        assert listed.status_code == 200
        assert [item["name"] for item in listed.json()["items"]] == ["api-token"]
        one = await http.get(api(f"/credentials/{created['id']}"), headers=accounts[role].headers)
        assert one.status_code == 200
    for role in ("operator", "viewer"):
        headers = accounts[role].headers
        assert_problem(
            await http.patch(
                api(f"/credentials/{created['id']}"), headers=headers, json={"description": "x"}
            ),
            403,
        )
        assert_problem(
            await http.post(
                api(f"/credentials/{created['id']}/rotate"),
                headers=headers,
                json={"secret": {"token": "t"}},
            ),
            403,
        )
        assert_problem(
            await http.delete(api(f"/credentials/{created['id']}"), headers=headers), 403
        )


async def test_secrets_are_write_only_and_sealed_at_rest(
    http: httpx.AsyncClient,
    admin: Account,
    settings: Settings,
    sshd: LoopbackSshd,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    values = {kind: planted() for kind in ("password", "token", "value", "winrm", "basic")}
    bodies: list[dict[str, Any]] = [
        {
            **key_credential(sshd),
            "secret": {
                "private_key": sshd.encrypted_key_text,
                "passphrase": sshd.encrypted_key_passphrase,
            },
        },
        {
            "name": "pw",
            "kind": "ssh_password",
            "username": "u",
            "secret": {"password": values["password"]},
        },
        {"name": "bearer", "kind": "http_bearer", "secret": {"token": values["token"]}},
        {"name": "plain", "kind": "secret", "secret": {"value": values["value"]}},
        {
            "name": "win",
            "kind": "winrm",
            "username": "Administrator",
            "secret": {"password": values["winrm"]},
        },
        {
            "name": "basic",
            "kind": "http_basic",
            "username": "u",
            "secret": {"password": values["basic"]},
        },
    ]
    answers = [await post_ok(http, "/credentials", admin.headers, body) for body in bodies]
    rotated = await http.post(
        api(f"/credentials/{answers[1]['id']}/rotate"),
        headers=admin.headers,
        json={"secret": {"password": values["password"] + "-new"}},
    )
    assert rotated.status_code == 200
    assert rotated.json()["id"] == answers[1]["id"]
    assert rotated.json()["rotated_at"] is not None
    listed = await http.get(api("/credentials"), headers=admin.headers)

    key_answer = answers[0]
    assert key_answer["has_secret"] is True
    assert key_answer["public_key_fingerprint"].startswith("SHA256:")
    assert key_answer["kind"] == "ssh_key"
    assert "secret" not in key_answer
    win = next(answer for answer in answers if answer["name"] == "win")
    assert (win["transport"], win["verify_tls"]) == ("ntlm", True)

    everything = " ".join(
        [listed.text, rotated.text, caplog.text, *(str(answer) for answer in answers)]
    )
    secret_texts = [*values.values(), sshd.encrypted_key_passphrase, "PRIVATE KEY"]
    for text in secret_texts:
        assert text not in everything

    rows = await execute_sql(
        settings.database_url or "", "SELECT name, ciphertext, key_id FROM credentials"
    )
    keyring = keyring_from(load_process_keys(settings))
    assert {row.key_id for row in rows} == {keyring.current_id}
    for row in rows:
        stored = bytes(row.ciphertext)
        for text in secret_texts:
            assert text.encode() not in stored
    audit = await execute_sql(settings.database_url or "", "SELECT detail::text FROM audit_log")
    for (detail,) in audit:
        for text in secret_texts:
            assert text not in detail


async def test_a_ciphertext_moved_to_another_row_does_not_open(
    http: httpx.AsyncClient, admin: Account, settings: Settings
) -> None:
    first = await post_ok(
        http,
        "/credentials",
        admin.headers,
        {"name": "first", "kind": "secret", "secret": {"value": planted()}},
    )
    second = await post_ok(
        http,
        "/credentials",
        admin.headers,
        {"name": "second", "kind": "secret", "secret": {"value": planted()}},
    )
    url = settings.database_url or ""
    await execute_sql(
        url,
        "UPDATE credentials AS target SET ciphertext = source.ciphertext, nonce = source.nonce, "
        "wrapped_key = source.wrapped_key, key_nonce = source.key_nonce "
        "FROM credentials AS source WHERE source.name = 'first' AND target.name = 'second'",
    )
    keyring = keyring_from(load_process_keys(settings))
    engine = create_async_engine(url)
    try:
        async with AsyncSession(engine) as session:
            opened = await reveal(
                session, keyring, first["id"], Purpose.connection_test("somewhere")
            )
            assert opened.secret["value"].startswith("planted-")
            with pytest.raises(CredentialUnavailable, match="cannot be decrypted"):
                await reveal(session, keyring, second["id"], Purpose.connection_test("x"))
            await session.commit()
    finally:
        await engine.dispose()
    access = await execute_sql(
        url, "SELECT credential_name, purpose, target FROM credential_access"
    )
    assert [tuple(row) for row in access] == [
        ("first", AccessPurpose.connection_test.value, "somewhere")
    ]


@pytest.mark.parametrize(
    ("secret", "path"),
    [
        ({"private_key": "not a key"}, "body.secret.private_key"),
        ({"private_key": "ENCRYPTED"}, "body.secret.passphrase"),
        ({"private_key": "ENCRYPTED", "passphrase": "wrong"}, "body.secret.passphrase"),
        ({}, "body.secret.private_key"),
        ({"private_key": "KEY", "extra": "x"}, "body.secret.extra"),
    ],
)
async def test_ssh_keys_are_checked_with_the_field_at_fault(
    http: httpx.AsyncClient,
    admin: Account,
    sshd: LoopbackSshd,
    secret: dict[str, str],
    path: str,
) -> None:
    replacements = {"ENCRYPTED": sshd.encrypted_key_text, "KEY": sshd.client_key_text}
    body = {
        **key_credential(sshd),
        "secret": {key: replacements.get(value, value) for key, value in secret.items()},
    }
    problem = assert_problem(
        await http.post(api("/credentials"), headers=admin.headers, json=body), 422
    )
    assert path in [item["path"] for item in problem["errors"]]
    assert "BEGIN" not in str(problem)


async def test_kind_specific_rules(http: httpx.AsyncClient, admin: Account) -> None:
    no_user = {"name": "nouser", "kind": "ssh_password", "secret": {"password": "p"}}
    problem = assert_problem(
        await http.post(api("/credentials"), headers=admin.headers, json=no_user), 422
    )
    assert problem["errors"][0]["path"] == "body.username"
    wrong_transport = {"name": "t", "kind": "secret", "transport": "ntlm", "secret": {"value": "v"}}
    problem = assert_problem(
        await http.post(api("/credentials"), headers=admin.headers, json=wrong_transport), 422
    )
    assert problem["errors"][0]["path"] == "body.transport"
    wrong_shape = {"name": "b", "kind": "http_bearer", "secret": {"password": "p"}}
    problem = assert_problem(
        await http.post(api("/credentials"), headers=admin.headers, json=wrong_shape), 422
    )
    assert {item["path"] for item in problem["errors"]} == {
        "body.secret.token",
        "body.secret.password",
    }


async def test_duplicates_and_deleting_a_credential_in_use_are_conflicts(
    http: httpx.AsyncClient, admin: Account, operator: Account, sshd: LoopbackSshd
) -> None:
    credential = await post_ok(http, "/credentials", admin.headers, key_credential(sshd))
    assert_problem(
        await http.post(api("/credentials"), headers=admin.headers, json=key_credential(sshd)),
        409,
    )
    await grant(http, admin.headers, credential["id"], roles=["operator"])
    for name in ("db-1", "db-2"):
        await post_ok(http, "/targets", operator.headers, sshd_target(sshd, credential["id"], name))
    shown = await http.get(api(f"/credentials/{credential['id']}"), headers=admin.headers)
    assert [target["name"] for target in shown.json()["targets"]] == ["db-1", "db-2"]
    problem = assert_problem(
        await http.delete(api(f"/credentials/{credential['id']}"), headers=admin.headers), 409
    )
    assert "db-1" in problem["detail"]
    assert problem["targets"] == ["db-1", "db-2"]
    unused = await post_ok(
        http,
        "/credentials",
        admin.headers,
        {"name": "unused", "kind": "secret", "secret": {"value": "v"}},
    )
    deleted = await http.delete(api(f"/credentials/{unused['id']}"), headers=admin.headers)
    assert deleted.status_code == 204
