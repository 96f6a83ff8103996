"""The console's job versions, step editing and schedule parameters in Debian's chromium: any
two versions diffed, a step edited (and renamed) through its form, and a schedule made with the
job's parameters and a target selector of its own. Locators by role and label only."""

import re

import httpx
import pytest
from playwright.async_api import Browser, expect

from tests.identity_helpers import Account, api
from tests.integration.test_console import browser, signed_in, swapped  # noqa: F401 (a fixture)
from tests.run_helpers import post

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]

TALK = {"id": "talk", "action": "ssh.command", "with": {"command": "echo one"}}
LATER = {"id": "later", "needs": ["talk"], "action": "ssh.command", "with": {"command": "echo two"}}


async def test_a_step_edited_through_its_form_and_any_two_versions_diffed(
    browser: Browser,  # noqa: F811 (the fixture imported above)
    served: httpx.AsyncClient,
    http: httpx.AsyncClient,
    operator: Account,
) -> None:
    document = {"name": "versioned", "targets": {"names": ["web-9"]}, "steps": [TALK, LATER]}
    job = await post(http, operator, "/jobs", document)
    described = {**document, "description": "now described"}
    changed = await http.put(api(f"/jobs/{job['id']}"), json=described, headers=operator.headers)
    assert changed.json()["version"] == 2

    visitor = await signed_in(browser, served, operator)
    page = visitor.page
    await visitor.open(f"/jobs/{job['id']}/edit")
    await swapped(page, page.get_by_label("Step to edit").select_option("talk"))
    await expect(page.get_by_role("heading", name="Edit step talk")).to_be_visible()
    await expect(page.get_by_label("Step id")).to_have_value("talk")
    command = page.get_by_label("Command")
    await expect(command).to_have_value("echo one")
    # Renamed and its command changed: the step that needs it follows the new name.
    await page.get_by_label("Step id").fill("greet")
    await command.fill("echo hello")
    await page.get_by_label("Timeout").fill("5m")
    await swapped(page, page.get_by_role("button", name="Save step").click())
    text = page.get_by_label("Document (YAML)")
    await expect(text).to_have_value(re.compile(r"id: greet\n"))
    await expect(text).to_have_value(re.compile(r"needs:\n\s*- greet"))
    await visitor.look("builder-edit-step")
    await page.get_by_role("button", name="Save job").click()
    await expect(page.get_by_role("heading", name="versioned v3")).to_be_visible()
    saved = (await http.get(api(f"/jobs/{job['id']}"), headers=operator.headers)).json()
    steps = saved["source"]["steps"] if saved.get("source") else saved["document"]["steps"]
    assert steps[0]["id"] == "greet"
    assert (steps[0]["with"]["command"], steps[0]["timeout"]) == ("echo hello", "5m")
    assert steps[1]["needs"] == ["greet"]

    # Version 1 against 3: both changes, each line saying whether it was added or removed.
    await page.get_by_label("From version").select_option("1")
    await page.get_by_label("To version").select_option("3")
    await page.get_by_role("button", name="Compare").click()
    await expect(page.get_by_role("heading", name="Changes from v1 to v3")).to_be_visible()
    diff = page.get_by_role("region", name="Versions")
    await expect(diff.get_by_role("insertion")).to_contain_text(
        [
            re.compile(r"^added: \+- id: greet$"),
            re.compile(r"^added: \+\s+command: echo hello$"),
            re.compile(r"^added: \+description: now described$"),
        ]
    )
    await expect(diff.get_by_role("deletion").filter(has_text="command: echo one")).to_have_text(
        re.compile(r"^removed: -\s+command: echo one$")
    )
    await visitor.look("job-diff-any")
    assert visitor.errors == []


async def test_a_schedule_carries_the_jobs_parameters_and_a_target_selector_of_its_own(
    browser: Browser,  # noqa: F811 (the fixture imported above)
    served: httpx.AsyncClient,
    http: httpx.AsyncClient,
    admin: Account,
) -> None:
    await post(http, admin, "/target-groups", {"name": "fleet"})
    await post(
        http, admin, "/targets", {"name": "web-7", "address": "127.0.0.1", "groups": ["fleet"]}
    )
    parameters = {
        "mount": {"type": "string", "required": True, "description": "what to clean"},
        "keep": {"type": "integer", "default": 3},
        "dry": {"type": "boolean", "default": True},
    }
    nap = {"id": "nap", "run_once": True, "action": "control.sleep", "with": {"duration": "1ms"}}
    job = await post(
        http, admin, "/jobs", {"name": "cleanup", "parameters": parameters, "steps": [nap]}
    )

    visitor = await signed_in(browser, served, admin)
    page = visitor.page
    await visitor.open(f"/jobs/{job['id']}")
    await page.get_by_role("link", name="Schedule it").click()
    await expect(page.get_by_role("heading", name="New schedule of cleanup")).to_be_visible()
    await page.get_by_label("Name", exact=True).fill("cleanup-nightly")
    await page.get_by_label("Cron expression").fill("@daily")
    mount = page.get_by_label("mount")
    await expect(mount).to_have_accessible_description(re.compile("required; what to clean"))
    await expect(page.get_by_label("keep")).to_have_accessible_description(re.compile("default: 3"))
    # Without the required parameter the API refuses, and says so at its field.
    await page.get_by_role("button", name="Create schedule").click()
    await expect(mount).to_have_accessible_description(re.compile("is required"))
    visitor.saw_refusal()
    await mount.fill("/var/tmp")
    await page.get_by_label("keep").fill("5")
    await page.get_by_label("dry").select_option("false")
    await page.get_by_role("checkbox", name="fleet").check()
    count = page.get_by_role("status").filter(has_text="match")
    await expect(count).to_have_text("1 target matches: web-7")
    await visitor.look("schedule-parameters")
    await page.get_by_role("button", name="Create schedule").click()
    await expect(page.get_by_role("heading", name="Schedule cleanup-nightly")).to_be_visible()
    schedules = (await http.get(api("/schedules"), headers=admin.headers)).json()["items"]
    schedule = next(item for item in schedules if item["name"] == "cleanup-nightly")
    assert schedule["parameters"] == {"mount": "/var/tmp", "keep": 5, "dry": False}
    assert schedule["targets"]["groups"] == ["fleet"]

    # The edit form holds them; emptying the selector gives the job's own targets back.
    await expect(page.get_by_label("mount")).to_have_value("/var/tmp")
    await expect(page.get_by_role("checkbox", name="fleet")).to_be_checked()
    await page.get_by_role("checkbox", name="fleet").uncheck()
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("definition").filter(has_text="the job's own")).to_be_visible()
    again = (await http.get(api(f"/schedules/{schedule['id']}"), headers=admin.headers)).json()
    assert (again["targets"], again["parameters"]["mount"]) == (None, "/var/tmp")
    assert visitor.errors == []
    await http.delete(api(f"/schedules/{schedule['id']}"), headers=admin.headers)
