"""POST /targets/{id}/test: a real login to the loopback sshd, run by the ssh worker, and the
host-key pinning that comes with it."""

from pathlib import Path
from typing import Any

import httpx
import pytest

from opsconductor.config import Settings
from tests.fixtures.sshd import LoopbackSshd
from tests.identity_helpers import Account, api, assert_problem, execute_sql
from tests.vault_helpers import (
    key_credential,
    password_credential,
    post_ok,
    shared_credential,
    sshd_target,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]

# Well formed, and not the sshd's key.
OTHER_FINGERPRINT = "SHA256:" + "A" * 43


async def run_test(
    client: httpx.AsyncClient, headers: dict[str, str], target_id: str
) -> dict[str, Any]:
    response = await client.post(api(f"/targets/{target_id}/test"), headers=headers)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


@pytest.mark.parametrize("make_credential", [key_credential, password_credential])
async def test_a_real_login_pins_the_host_key(
    http: httpx.AsyncClient,
    admin: Account,
    operator: Account,
    sshd: LoopbackSshd,
    settings: Settings,
    make_credential: object,
) -> None:
    assert callable(make_credential)
    credential = await shared_credential(http, admin.headers, make_credential(sshd))
    target = await post_ok(http, "/targets", operator.headers, sshd_target(sshd, credential["id"]))
    assert target["host_key_fingerprint"] is None

    answer = await run_test(http, operator.headers, target["id"])
    assert answer["ok"] is True, answer
    assert answer["host_key_fingerprint"] == sshd.host_key_fingerprint
    assert answer["latency_ms"] > 0
    assert sshd.password not in str(answer)

    shown = await http.get(api(f"/targets/{target['id']}"), headers=operator.headers)
    assert shown.json()["host_key_fingerprint"] == sshd.host_key_fingerprint
    access = await http.get(
        api(f"/credentials/{credential['id']}/access"), headers=operator.headers
    )
    assert [(row["purpose"], row["target"]) for row in access.json()["items"]] == [
        ("connection_test", "loopback")
    ]
    assert access.json()["items"][0]["worker_host"]
    # The second login checks against the pinned key and still succeeds.
    assert (await run_test(http, operator.headers, target["id"]))["ok"] is True
    rows = await execute_sql(settings.database_url or "", "SELECT count(*) FROM credential_access")
    assert rows[0][0] == 2


async def test_a_host_offering_a_host_certificate_is_reached_with_its_plain_key(
    http: httpx.AsyncClient,
    admin: Account,
    operator: Account,
    tmp_path: Path,
) -> None:
    """Fleets with an SSH CA sign their host keys; we pin plain keys and trust no CA, so the
    worker must ask for the plain key rather than be handed a certificate it cannot check."""
    with LoopbackSshd(tmp_path / "sshd", host_certificate=True) as certified:
        credential = await shared_credential(
            http, admin.headers, key_credential(certified, name="ca-fleet-key")
        )
        target = await post_ok(
            http,
            "/targets",
            operator.headers,
            sshd_target(certified, credential["id"], name="ca-signed"),
        )
        first = await run_test(http, operator.headers, target["id"])
        assert first["ok"] is True, first
        assert first["host_key_fingerprint"] == certified.host_key_fingerprint
        # The second login checks the pinned key.
        second = await run_test(http, operator.headers, target["id"])
        assert second["ok"] is True, second
    assert "HostCertificate" in certified.config_path.read_text()


async def test_a_changed_host_key_is_refused_until_an_operator_accepts_it(
    http: httpx.AsyncClient, admin: Account, operator: Account, sshd: LoopbackSshd
) -> None:
    credential = await shared_credential(http, admin.headers, key_credential(sshd))
    target = await post_ok(
        http,
        "/targets",
        operator.headers,
        {**sshd_target(sshd, credential["id"]), "host_key_fingerprint": OTHER_FINGERPRINT},
    )
    refused = await run_test(http, operator.headers, target["id"])
    assert refused["ok"] is False
    assert refused["detail"] == (
        f"host key for loopback changed: expected {OTHER_FINGERPRINT}, "
        f"got {sshd.host_key_fingerprint}; an operator must accept the new key"
    )
    assert refused["host_key_fingerprint"] == sshd.host_key_fingerprint
    shown = (await http.get(api(f"/targets/{target['id']}"), headers=operator.headers)).json()
    # Still the operator's key: a refused connection never replaces it.
    assert shown["host_key_fingerprint"] == OTHER_FINGERPRINT
    assert shown["presented_host_key_fingerprint"] == sshd.host_key_fingerprint

    assert (await run_test(http, operator.headers, target["id"]))["ok"] is False
    accepted = await http.post(
        api(f"/targets/{target['id']}/host-key"),
        headers=operator.headers,
        json={"accept_presented": True},
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["host_key_fingerprint"] == sshd.host_key_fingerprint
    assert accepted.json()["presented_host_key_fingerprint"] is None
    assert (await run_test(http, operator.headers, target["id"]))["ok"] is True

    # Nothing left to accept; and an explicit fingerprint pins that one.
    assert_problem(
        await http.post(
            api(f"/targets/{target['id']}/host-key"),
            headers=operator.headers,
            json={"accept_presented": True},
        ),
        409,
    )
    pinned = await http.post(
        api(f"/targets/{target['id']}/host-key"),
        headers=operator.headers,
        json={"fingerprint": OTHER_FINGERPRINT},
    )
    assert pinned.json()["host_key_fingerprint"] == OTHER_FINGERPRINT


async def test_failures_explain_themselves_without_secrets(
    http: httpx.AsyncClient, admin: Account, operator: Account, sshd: LoopbackSshd
) -> None:
    wrong = {**password_credential(sshd), "secret": {"password": "planted-wrong-password"}}
    credential = await shared_credential(http, admin.headers, wrong)
    target = await post_ok(http, "/targets", operator.headers, sshd_target(sshd, credential["id"]))
    answer = await run_test(http, operator.headers, target["id"])
    assert answer["ok"] is False
    assert "authentication as 'opsc-test'" in answer["detail"]
    assert "planted-wrong-password" not in str(answer)

    closed = await post_ok(
        http,
        "/targets",
        operator.headers,
        {**sshd_target(sshd, credential["id"], "closed"), "port": 1},
    )
    answer = await run_test(http, operator.headers, closed["id"])
    assert answer["ok"] is False
    assert "cannot connect to closed" in answer["detail"]

    bare = await post_ok(http, "/targets", operator.headers, {"name": "bare", "address": "x"})
    answer = await run_test(http, operator.headers, bare["id"])
    assert (answer["ok"], answer["detail"]) == (False, "target 'bare' has no credential")

    windows = await post_ok(
        http, "/targets", operator.headers, {"name": "win", "address": "x", "protocol": "winrm"}
    )
    answer = await run_test(http, operator.headers, windows["id"])
    assert (answer["ok"], answer["detail"]) == (False, "target 'win' has no credential")
