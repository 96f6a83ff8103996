"""The console's channel, user and account pages in Debian's chromium: an admin creates a
channel and test-sends to the loopback receiver, creates a user, changes their role and
issues a reset link the user follows; the user sets a profile, makes an API token that works
until they revoke it, and changes their password. And "forgot password": an admin chooses the
email channel, a signed-out user asks for a link, which the SMTP sink receives and which sets
their new password; asking too often is refused at the form."""

import asyncio
import re

import httpx
import pytest
from playwright.async_api import Browser, expect

from opsconductor.config import Settings
from tests.fixtures.http_receiver import HttpReceiver
from tests.fixtures.smtp_sink import SmtpSink
from tests.identity_helpers import Account, api, bearer
from tests.integration.test_console import Visitor, browser, signed_in
from tests.integration.test_notifications import mail_url
from tests.integration.test_password_forgot import forgot
from tests.run_helpers import post

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]
__all__ = ["browser"]  # the module-scoped chromium fixture, shared with test_console

RESET_PASSWORD = "chosen-through-the-link"
NEW_PASSWORD = "changed-on-the-account-page"
FORGOT_PASSWORD = "chosen-after-forgetting"
# The API's answer to every "forgot password" request, whoever it names.
NEUTRAL = "If an account with that username or email has an email address, a reset link"


async def sign_in_on_the_form(visitor: Visitor, username: str, password: str) -> None:
    page = visitor.page
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


async def test_channels_users_and_your_own_account(
    browser: Browser,
    served: httpx.AsyncClient,
    admin: Account,
    http_receiver: HttpReceiver,
) -> None:
    visitor = await signed_in(browser, served, admin)
    page = visitor.page

    # A channel whose URL is written once and never shown; a test send reaches the receiver.
    await page.get_by_role("link", name="Channels", exact=True).click()
    await page.get_by_role("link", name="New notification channel").click()
    await page.get_by_label("Name", exact=True).fill("hook")
    await page.get_by_label("URL").fill(f"json://127.0.0.1:{http_receiver.port}/from-console")
    await visitor.look("channel-new")
    await page.get_by_role("button", name="Create channel").click()
    await expect(page.get_by_role("heading", name="Channel hook")).to_be_visible()
    await expect(page.get_by_label("URL")).to_have_value("")
    await expect(page.get_by_role("definition").filter(has_text="json://…")).to_be_visible()
    await page.get_by_role("button", name="Send a test message").click()
    await expect(page.get_by_role("status")).to_contain_text("Delivered", timeout=30_000)
    (request,) = http_receiver.wait_for(1)
    assert request.path == "/from-console"
    await page.reload()
    log = page.get_by_role("region", name="Delivery log")
    await expect(log.get_by_role("cell", name="delivered", exact=True)).to_be_visible()
    await visitor.look("channel-tested")

    # A user: created, their role changed, and a one-time reset link issued for them.
    await page.get_by_role("link", name="Users", exact=True).click()
    await page.get_by_role("link", name="New user").click()
    await page.get_by_label("Username").fill("casey")
    await page.get_by_label("Email").fill("casey@example.com")
    await page.get_by_label("Role").select_option("viewer")
    await page.get_by_label("Initial password").fill("only-the-admin-knew")
    await page.get_by_role("button", name="Create user").click()
    await expect(page.get_by_role("heading", name="User casey")).to_be_visible()
    await expect(page.get_by_label("Initial password")).to_have_count(0)
    await page.get_by_label("Role").select_option("operator")
    async with page.expect_event("load"):  # the page reloads once the API has saved it
        await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("definition").filter(has_text="operator")).to_be_visible()
    await page.get_by_role("button", name="Issue a reset link").click()
    link = page.get_by_role("status").get_by_role("definition").first
    await expect(link).to_contain_text("/reset-password#token=ocp_")
    await visitor.look("user-reset-link")
    reset_link = await link.text_content()
    assert reset_link is not None

    # Casey follows the link in a browser of their own, then signs in with what they chose.
    casey = Visitor(await (await browser.new_context()).new_page(), visitor.base)
    you = casey.page
    await you.goto(reset_link)
    await expect(you.get_by_label("Reset token")).not_to_have_value("")
    await you.get_by_label("New password").fill(RESET_PASSWORD)
    await casey.look("reset-password")
    await you.get_by_role("button", name="Set password").click()
    await expect(you).to_have_url(re.compile(r"/login$"))
    await sign_in_on_the_form(casey, "casey", RESET_PASSWORD)

    # Their own account: a display name greets them in the header.
    await casey.open("/account")
    await you.get_by_label("Display name").fill("Casey Jones")
    async with you.expect_event("load"):
        await you.get_by_role("button", name="Save profile").click()
    await expect(you.get_by_role("banner").get_by_role("link", name="Casey Jones")).to_be_visible()
    await expect(you.get_by_role("region", name="Your sessions")).to_contain_text("this one")

    # An API token, shown once, works for the API until it is revoked.
    await you.get_by_label("Token name").fill("ci")
    await you.get_by_role("button", name="Create token").click()
    shown = you.get_by_role("status").get_by_role("definition").first
    await expect(shown).not_to_have_text(re.compile(r"^(|—)$"))
    token = await shown.text_content()
    assert token is not None
    me = await served.get(api("/auth/me"), headers=bearer(token))
    assert (me.status_code, me.json()["username"]) == (200, "casey")
    await casey.look("account-token-created")
    await you.reload()
    tokens = you.get_by_role("region", name="Your API tokens")
    await expect(tokens.get_by_role("cell", name=token)).to_have_count(0)
    you.once("dialog", lambda dialog: dialog.accept())
    async with you.expect_event("load"):
        await tokens.get_by_role("button", name="Revoke ci").click()
    await expect(tokens.get_by_role("button", name="Revoke ci")).to_have_count(0)
    assert (await served.get(api("/auth/me"), headers=bearer(token))).status_code == 401

    # A new password: the session stays; the next sign-in takes the new one.
    await you.get_by_label("Current password").fill(RESET_PASSWORD)
    await you.get_by_label("New password").fill(NEW_PASSWORD)
    async with you.expect_event("load"):
        await you.get_by_role("button", name="Change password").click()
    await casey.look("account")
    await you.get_by_role("button", name="Sign out").click()
    await expect(you).to_have_url(re.compile(r"/login$"))
    await sign_in_on_the_form(casey, "casey", NEW_PASSWORD)


async def test_a_forgotten_password_is_reset_through_the_link_mailed_by_the_chosen_channel(
    browser: Browser,
    served: httpx.AsyncClient,
    http: httpx.AsyncClient,
    settings: Settings,
    admin: Account,
    operator: Account,
    smtp_sink: SmtpSink,
) -> None:
    await post(http, admin, "/notification-channels", {"name": "mail", "url": mail_url(smtp_sink)})
    await post(
        http, admin, "/notification-channels", {"name": "hook", "url": "json://127.0.0.1:9/x"}
    )
    visitor = await signed_in(browser, served, admin)
    page = visitor.page

    # The admin chooses the channel among the email ones (the json one is not offered).
    await page.get_by_role("link", name="Settings", exact=True).click()
    await expect(page.get_by_role("definition")).to_have_text("off")
    channel = page.get_by_label("Email channel")
    await expect(channel.get_by_role("option")).to_have_text(
        ["off: only admins issue reset links", "mail"]
    )
    await channel.select_option(label="mail")
    async with page.expect_event("load"):
        await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("definition")).to_have_text("mail")
    await expect(channel.get_by_role("option", selected=True)).to_have_text("mail")
    await visitor.look("settings")

    # Signed out: "Forgot password?" on the sign-in form; an unknown name and a real one get
    # the same answer.
    you = Visitor(await (await browser.new_context()).new_page(), visitor.base)
    await you.open("/login")
    await you.page.get_by_role("link", name="Forgot password?").click()
    answers = []
    for name in ("nobody@example.com", f"{operator.username}@example.com"):
        await you.page.reload()
        await you.page.get_by_label("Username or email").fill(name)
        await you.page.get_by_role("button", name="Send me a reset link").click()
        await expect(you.page.get_by_role("status")).to_contain_text(NEUTRAL)
        answers.append(await you.page.get_by_role("status").text_content())
    assert answers[0] == answers[1]
    await you.look("forgot-password")

    # In a thread: the workers that send it run on this test's event loop.
    mailed = await asyncio.to_thread(smtp_sink.wait_for, 1, 60)
    (mail,) = mailed
    assert mail.rcpt_tos == [f"{operator.username}@example.com"]
    found = re.search(r"(\S+)/reset-password#token=(\S+)", mail.body)
    assert found is not None, mail.body
    assert found[1] == settings.public_url.rstrip("/")
    # The link as mailed, at the address this test serves the console on.
    await you.open(f"/reset-password#token={found[2]}")
    await you.page.get_by_label("New password").fill(FORGOT_PASSWORD)
    await you.page.get_by_role("button", name="Set password").click()
    await expect(you.page).to_have_url(re.compile(r"/login$"))
    await sign_in_on_the_form(you, operator.username, FORGOT_PASSWORD)

    # Asking for one name too often: the API's refusal is shown at the form.
    for _ in range(settings.login_max_failures - 1):
        assert (await forgot(http, "nobody@example.com")).status_code == 202
    await you.open("/forgot-password")
    await you.page.get_by_label("Username or email").fill("nobody@example.com")
    await you.page.get_by_role("button", name="Send me a reset link").click()
    refused = you.page.get_by_role("alert").filter(has_text="too many reset links asked for")
    await expect(refused).to_be_visible()
    await expect(you.page.get_by_role("status")).to_be_hidden()
    assert you.errors == [
        "Failed to load resource: the server responded with a status of 429 (Too Many Requests)"
    ]
