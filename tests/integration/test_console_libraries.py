"""The console's library, credential-grant, host-key and delivery-log pages in Debian's
chromium, as an admin: a library installed from a file, upgraded and disabled; the built-in
libraries installed with one button; a credential
granted to a user, with its access log; a changed host key accepted after seeing both
fingerprints; a test send found in the delivery log of every channel. Locators by role and
label only."""

import re
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from tests.fixtures.http_receiver import HttpReceiver
from tests.fixtures.sshd import LoopbackSshd
from tests.identity_helpers import Account, api
from tests.integration.test_console import browser, signed_in
from tests.vault_helpers import key_credential, post_ok, sshd_target

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]
__all__ = ["browser"]  # the module-scoped chromium fixture, shared with test_console

# Well formed, and not the sshd's key: the key "pinned" before the host was "reinstalled".
OLD_FINGERPRINT = "SHA256:" + "A" * 43

LIBRARY = """\
name: chores
version: {version}
description: Small chores
steps:
  uptime:
    description: How long the target has been up
    parameters:
      pretty: {{type: boolean, default: false}}
    body:
      - id: up
        action: ssh.command
        with: {{command: uptime}}
"""


async def test_libraries_grants_a_changed_host_key_and_the_delivery_log(
    browser: Browser,
    served: httpx.AsyncClient,
    http: httpx.AsyncClient,
    admin: Account,
    operator: Account,
    sshd: LoopbackSshd,
    http_receiver: HttpReceiver,
    tmp_path: Path,
) -> None:
    credential = await post_ok(http, "/credentials", admin.headers, key_credential(sshd))
    target = {**sshd_target(sshd, credential["id"]), "host_key_fingerprint": OLD_FINGERPRINT}
    target = await post_ok(http, "/targets", admin.headers, target)
    # The sshd offers another key than the pinned one: refused, and the offered key kept.
    refused = await post_ok(http, f"/targets/{target['id']}/test", admin.headers, {})
    assert refused["ok"] is False
    channel = {"name": "hook", "url": f"json://127.0.0.1:{http_receiver.port}/hook"}
    channel = await post_ok(http, "/notification-channels", admin.headers, channel)
    sent = await post_ok(http, f"/notification-channels/{channel['id']}/test", admin.headers, {})
    assert sent["ok"] is True

    visitor = await signed_in(browser, served, admin)
    page = visitor.page
    page.on("dialog", lambda dialog: dialog.accept())

    # A library installed from a file the browser reads, then upgraded and disabled.
    document = tmp_path / "chores.yaml"
    document.write_text(LIBRARY.format(version="1.0.0"))
    await visitor.open("/lists/libraries")  # the former read-only list's address
    await expect(page).to_have_url(re.compile(r"/libraries$"))
    await page.get_by_label("Library document from a file").set_input_files(document)
    await expect(page.get_by_label("Library document", exact=True)).to_have_value(
        re.compile("name: chores")
    )
    await page.get_by_role("button", name="Install library").click()
    await expect(page.get_by_role("cell", name="chores/uptime")).to_be_visible()
    # The built-in libraries: what was installed is said, and the list then has them.
    await page.get_by_role("button", name="Install built-in libraries").click()
    builtin = page.get_by_role("status")
    await expect(builtin).to_contain_text("linux 1.0.0")
    await expect(builtin).to_contain_text("windows 1.0.0")
    await visitor.look("libraries")
    await builtin.get_by_role("link", name="Reload the list").click()
    for name in ("linux", "windows"):
        await expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
    await page.get_by_role("button", name="Install built-in libraries").click()
    await expect(builtin).to_contain_text("linux 1.0.0 — installed already")
    await page.get_by_role("link", name="chores").click()
    await expect(page.get_by_role("heading", name="Library chores")).to_be_visible()
    actions = page.get_by_role("region", name="Actions")  # what a job may use
    await expect(
        actions.get_by_role("cell", name="pretty (boolean, default false)")
    ).to_be_visible()
    await page.get_by_label("Library document", exact=True).fill(LIBRARY.format(version="1.1.0"))
    await page.get_by_role("button", name="Upgrade").click()
    versions = page.get_by_role("region", name="Versions")
    await expect(versions.get_by_role("button", name="Disable 1.1.0")).to_be_visible()
    await page.get_by_role("button", name="Disable library").click()
    await expect(page.get_by_role("button", name="Enable library")).to_be_visible()
    await visitor.look("library")
    library = (await http.get(api("/libraries/chores"), headers=admin.headers)).json()
    installed = [version["version"] for version in library["versions"]]
    assert (library["enabled"], installed) == (False, ["1.1.0", "1.0.0"])

    # The credential: granted to a user, and the worker's decryption for the test in its log.
    await visitor.open(f"/credentials/{credential['id']}")
    await expect(page.get_by_role("definition").filter(has_text="admins only")).to_be_visible()
    await page.get_by_label(operator.username).check()
    await page.get_by_role("button", name="Save grants").click()
    await expect(
        page.get_by_role("definition").filter(has_text=f"user:{operator.username}")
    ).to_be_visible()
    await expect(page.get_by_label(operator.username)).to_be_checked()
    access_log = page.get_by_role("region", name="Access log")
    await expect(access_log.get_by_role("cell", name="connection test")).to_be_visible()
    await visitor.look("credential-grants")
    grants = await http.get(api(f"/credentials/{credential['id']}/grants"), headers=admin.headers)
    assert [user["username"] for user in grants.json()["users"]] == [operator.username]

    # The target: both fingerprints shown, the new one pinned once confirmed.
    await visitor.open(f"/targets/{target['id']}")
    changed = page.get_by_role("region", name="Host key changed")
    await expect(changed.get_by_role("definition").first).to_have_text(OLD_FINGERPRINT)
    await expect(changed.get_by_role("definition").last).to_have_text(sshd.host_key_fingerprint)
    await visitor.look("target-host-key-changed")
    await changed.get_by_role("button", name="Accept the new host key").click()
    await expect(page.get_by_role("region", name="Host key changed")).to_have_count(0)
    await expect(
        page.get_by_role("definition").filter(has_text=sshd.host_key_fingerprint)
    ).to_be_visible()
    tested = await post_ok(http, f"/targets/{target['id']}/test", admin.headers, {})
    assert tested["ok"] is True

    # The delivery log of every channel and run, filtered by status and run.
    await page.get_by_role("link", name="Deliveries").click()
    await expect(page.get_by_role("heading", name="Notification deliveries")).to_be_visible()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="hook"))
    await expect(row).to_contain_text("delivered")
    await expect(row.get_by_role("cell", name="1", exact=True)).to_be_visible()
    await visitor.look("deliveries")
    await page.get_by_label("Status").select_option("failed")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_role("cell", name="Nothing sent that matches.")).to_be_visible()
    await page.get_by_label("Status").select_option("")
    await page.get_by_label("Run id").fill("not-a-run")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_label("Run id")).to_have_accessible_description(
        re.compile("not a run id")
    )
