""" "Forgot password": an admin chooses an email channel; anyone may ask for a link by username or
email and gets the same answer whether or not the account exists; an existing user's link
arrives at the SMTP sink and resets the password; asking is throttled."""

import asyncio
import re

import httpx
import pytest

from opsconductor.config import Settings
from tests.fixtures.smtp_sink import SmtpSink
from tests.identity_helpers import Account, api, assert_problem, login
from tests.integration.test_notifications import mail_url
from tests.run_helpers import post

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]

ASKS_PER_NAME = 3


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {
        "login_max_failures": ASKS_PER_NAME,
        "login_max_failures_per_address": 20,
        "login_window_seconds": 120,
    }


async def forgot(http: httpx.AsyncClient, name: str) -> httpx.Response:
    return await http.post(api("/auth/forgot-password"), json={"login": name})


async def test_a_forgotten_password_is_reset_through_the_link_mailed_to_the_user(
    http: httpx.AsyncClient,
    settings: Settings,
    admin: Account,
    operator: Account,
    viewer: Account,
    smtp_sink: SmtpSink,
) -> None:
    channel = await post(
        http, admin, "/notification-channels", {"name": "mail", "url": mail_url(smtp_sink)}
    )
    hook = await post(
        http, admin, "/notification-channels", {"name": "hook", "url": "json://127.0.0.1:9/x"}
    )
    setting = api("/settings/password-reset")
    assert_problem(
        await http.put(setting, json={"channel_id": channel["id"]}, headers=viewer.headers), 403
    )
    not_mail = await http.put(setting, json={"channel_id": hook["id"]}, headers=admin.headers)
    assert_problem(not_mail, 422)
    assert not_mail.json()["errors"][0]["path"] == "body.channel_id"
    chosen = await http.put(setting, json={"channel_id": channel["id"]}, headers=admin.headers)
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["channel_name"] == "mail"
    audit = await http.get(
        api("/audit"),
        params={"action": "settings.password_reset_update", "outcome": "success"},
        headers=admin.headers,
    )
    assert [row["detail"]["channel_id"] for row in audit.json()["items"]] == [channel["id"]]

    mailed_before = len(smtp_sink.messages)
    unknown = await forgot(http, "nobody@example.com")
    known = await forgot(http, "Olivia@example.com")
    assert (unknown.status_code, unknown.json()) == (known.status_code, known.json())
    assert known.status_code == 202

    # In a thread: the workers that send it run on this test's event loop.
    mailed = await asyncio.to_thread(smtp_sink.wait_for, mailed_before + 1, 60)
    mail = mailed[mailed_before]
    assert mail.rcpt_tos == ["olivia@example.com"]
    found = re.search(r"(\S+/reset-password)#token=(\S+)", mail.body)
    assert found is not None, mail.body
    assert found[1] == f"{settings.public_url.rstrip('/')}/reset-password"
    redeemed = await http.post(
        api("/auth/password-reset"),
        json={"token": found[2], "new_password": "a-brand-new-password"},
    )
    assert redeemed.status_code == 204, redeemed.text
    await login(http, operator.username, "a-brand-new-password")
    # Used once: the link does not work again.
    again = await http.post(
        api("/auth/password-reset"), json={"token": found[2], "new_password": "another-password!"}
    )
    assert_problem(again, 422)
    assert len(smtp_sink.messages) == mailed_before + 1

    # The unknown name was asked for once; two more, then the name is throttled (and the
    # answer still says nothing about the account).
    for _ in range(ASKS_PER_NAME - 1):
        assert (await forgot(http, "nobody@example.com")).status_code == 202
    throttled = await forgot(http, "nobody@example.com")
    assert_problem(throttled, 429)
    assert throttled.json()["detail"] == "too many reset links asked for; try again later"
