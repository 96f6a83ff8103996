"""The console's schedule and discovery pages in Debian's chromium: a schedule whose words
and next fires follow the typing, paused with a note, resumed, triggered and backfilled after
seeing the runs; a scan of 127.0.0.1 checked as it is typed, followed to its end, and its
host imported as a target with a credential and a group. Locators by role and label only."""

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.async_api import Browser, Dialog, expect

from tests.fixtures.sshd import LoopbackSshd
from tests.identity_helpers import Account, api
from tests.integration.test_console import browser, signed_in  # noqa: F401 (a fixture)
from tests.run_helpers import post
from tests.vault_helpers import key_credential

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]

BERLIN = ZoneInfo("Europe/Berlin")
NAP = {"id": "nap", "run_once": True, "action": "control.sleep", "with": {"duration": "100ms"}}


def fires_of_0230_berlin(start: datetime, end: datetime) -> int:
    """How many 02:30s Berlin has in [start, end): none on the day the clocks skip it."""
    count = 0
    day = start.astimezone(BERLIN).date() - timedelta(days=1)
    while day <= end.astimezone(BERLIN).date():
        local = datetime(day.year, day.month, day.day, 2, 30, tzinfo=BERLIN, fold=1)
        real = local.astimezone(UTC).astimezone(BERLIN).replace(tzinfo=None)
        count += real == local.replace(tzinfo=None) and start <= local < end
        day += timedelta(days=1)
    return count


async def accept(dialog: Dialog) -> None:
    await dialog.accept()


async def test_a_schedule_is_made_paused_resumed_triggered_and_backfilled_in_the_console(
    browser: Browser,  # noqa: F811 (the fixture imported above)
    served: httpx.AsyncClient,
    http: httpx.AsyncClient,
    admin: Account,
    viewer: Account,
) -> None:
    await post(http, admin, "/jobs", {"name": "nightly", "steps": [NAP]})
    visitor = await signed_in(browser, served, admin)
    page = visitor.page
    await visitor.open("/lists/schedules")
    await page.get_by_role("link", name="New schedule").click()
    await page.get_by_label("Job").select_option(label="nightly")
    await page.get_by_role("button", name="Next").click()
    await page.get_by_label("Name", exact=True).fill("nightly-nap")
    cron = page.get_by_label("Cron expression")
    await cron.fill("30 2 * * *")
    fires = page.get_by_role("listitem").filter(has_text=" UTC")
    await expect(page.get_by_text("at 02:30 every day", exact=True)).to_be_visible()
    await expect(fires).to_have_count(5)
    await expect(fires.first).to_contain_text("02:30:00 UTC")
    # A mistake is said at the field as it is typed, and gone once mended.
    await cron.fill("61 2 * * *")
    await expect(cron).to_have_accessible_description(re.compile("61 is out of range 0-59"))
    await expect(fires).to_have_count(0)
    await cron.fill("30 2 * * *")
    await page.get_by_label("Time zone").select_option("Europe/Berlin")
    # Shown in UTC: 02:30 in Berlin is 00:30 or 01:30 UTC, as the season has it.
    await expect(fires.first).to_contain_text(re.compile(r"0[01]:30:00 UTC"))
    await expect(page.get_by_text("(Europe/Berlin)")).to_be_visible()
    await expect(cron).to_have_accessible_description(re.compile("^minute hour"))
    await visitor.look("schedule-new")
    await page.get_by_role("button", name="Create schedule").click()
    await expect(page.get_by_role("heading", name="Schedule nightly-nap")).to_be_visible()
    await expect(
        page.get_by_role("definition").filter(has_text="at 02:30 every day")
    ).to_be_visible()
    schedule = (await http.get(api("/schedules"), headers=admin.headers)).json()["items"][0]
    assert (schedule["cron"], schedule["timezone"]) == ("30 2 * * *", "Europe/Berlin")

    await page.get_by_label("Note").fill("disk replacement")
    await page.get_by_role("button", name="Pause").click()
    paused = page.get_by_role("definition").filter(has_text="yes: disk replacement")
    await expect(paused).to_be_visible()
    await page.get_by_role("button", name="Resume").click()
    await expect(page.get_by_role("definition").filter(has_text=re.compile("^no$"))).to_be_visible()

    await page.get_by_role("button", name="Trigger now").click()
    runs = page.get_by_role("region", name="Recent runs").get_by_role("row")
    await expect(runs.filter(has_text="succeeded")).to_have_count(1, timeout=30_000)

    # The runs a backfill would start are listed before it is confirmed.
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=2)
    expected = fires_of_0230_berlin(start, end)
    await page.get_by_label("From (UTC)").fill(start.strftime("%Y-%m-%dT%H:%M"))
    await page.get_by_label("Until (UTC, not included)").fill(end.strftime("%Y-%m-%dT%H:%M"))
    await expect(
        page.get_by_text(f"{expected} run{'' if expected == 1 else 's'} would start")
    ).to_be_visible()
    await visitor.look("schedule-page")
    page.once("dialog", accept)
    await page.get_by_role("button", name="Backfill").click()
    await expect(runs.filter(has_text="succeeded")).to_have_count(1 + expected, timeout=30_000)
    assert visitor.errors == []

    looker = await signed_in(browser, served, viewer)
    await looker.open(f"/schedules/{schedule['id']}")
    await expect(looker.page.get_by_role("heading", name="Schedule nightly-nap")).to_be_visible()
    await expect(looker.page.get_by_role("button")).to_have_text(["Sign out"])
    await http.delete(api(f"/schedules/{schedule['id']}"), headers=admin.headers)


async def test_a_scan_of_loopback_is_followed_and_its_host_imported_in_the_console(
    browser: Browser,  # noqa: F811 (the fixture imported above)
    served: httpx.AsyncClient,
    http: httpx.AsyncClient,
    admin: Account,
    sshd: LoopbackSshd,
) -> None:
    await post(http, admin, "/credentials", key_credential(sshd))
    await post(http, admin, "/target-groups", {"name": "found"})
    visitor = await signed_in(browser, served, admin)
    page = visitor.page
    await visitor.open("/lists/discovery")
    await page.get_by_role("link", name="New discovery scan").click()
    hosts = page.get_by_label("Hosts", exact=True)
    await hosts.fill("127.0.0.1 -oX")
    await expect(hosts).to_have_accessible_description(re.compile("no spaces, no options"))
    await hosts.fill("127.0.0.1")
    await page.get_by_label("Ports").fill(str(sshd.port))
    await expect(
        page.get_by_text(f"Scans 1 address (127.0.0.1) on ports {sshd.port}.")
    ).to_be_visible()
    await expect(hosts).to_have_accessible_description(re.compile("^IP addresses"))
    await visitor.look("scan-new")
    await page.get_by_role("button", name="Start scan").click()
    # Followed live; the page shows the hosts once the scan has ended.
    await expect(page.get_by_role("heading", name="Hosts found")).to_be_visible(timeout=60_000)
    await expect(page.get_by_role("definition").filter(has_text="succeeded")).to_be_visible()
    await page.get_by_role("checkbox", name=re.compile(rf"^127\.0\.0\.1.*{sshd.port}.ssh")).check()
    await page.get_by_label("Credential").select_option(label="sshd-key (ssh_key)")
    await page.get_by_role("checkbox", name="found").check()
    await visitor.look("scan-finished")
    await page.get_by_role("button", name="Import as targets").click()
    # Nothing was already there, nothing skipped: one target created, named in the answer.
    nothing = (
        page.get_by_role("status").get_by_role("definition").filter(has_text=re.compile("^none$"))
    )
    await expect(nothing).to_have_count(2)
    (target,) = (await http.get(api("/targets"), headers=admin.headers)).json()["items"]
    assert (target["address"], target["port"], target["groups"]) == (
        "127.0.0.1",
        sshd.port,
        ["found"],
    )
    await expect(page.get_by_role("definition").filter(has_text=target["name"])).to_be_visible()
    assert visitor.errors == []
