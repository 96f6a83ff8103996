"""The console's channel, user and account pages in Debian's chromium: an admin creates a
channel and test-sends to the loopback receiver, creates a user, changes their role and
issues a reset link the user follows; the user sets a profile, makes an API token that works
until they revoke it, and changes their password."""

import re

import httpx
import pytest
from playwright.async_api import Browser, expect

from tests.fixtures.http_receiver import HttpReceiver
from tests.identity_helpers import Account, api, bearer
from tests.integration.test_console import Visitor, browser, signed_in

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]
__all__ = ["browser"]  # the module-scoped chromium fixture, shared with test_console

RESET_PASSWORD = "chosen-through-the-link"
NEW_PASSWORD = "changed-on-the-account-page"


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
