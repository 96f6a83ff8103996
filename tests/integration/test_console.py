"""The web console in a real browser (Debian's chromium, driven by Playwright) against the app
served on a socket: signing in, building and running a job through the forms against the
loopback sshd with its log arriving live, a big run's grid paged and filtered, approving a
gated run, a viewer without write controls, and every page at 1280 and 390 px wide with no
console errors. Screenshots land in tests/artifacts/console/."""

import re
import uuid
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, Literal, NamedTuple

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.fixtures.sshd import LoopbackSshd
from tests.identity_helpers import Account, api
from tests.run_helpers import plant_run, post, start_job_run, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]

ARTIFACTS = Path(__file__).parents[1] / "artifacts" / "console"
# axe-core, vendored for the tests only (tests/vendor/axe-core/README); the app never serves it.
AXE_SOURCE = (Path(__file__).parents[1] / "vendor" / "axe-core" / "axe.min.js").read_text()
# The impacts that fail a page; axe's "moderate" and "minor" are left to review.
AXE_FAILING_IMPACTS = ("serious", "critical")
SWAGGER_UI_AXE_FINDINGS = ("color-contrast", "nested-interactive", "html-has-lang")
WIDTHS = (1280, 390)
CHROMIUM = "/usr/bin/chromium"
TEMPORAL_UI = "http://127.0.0.1:8233"
# The run page's grid of targets and steps, by its heading.
RUN_GRID = "Targets \N{MULTIPLICATION SIGN} steps"


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"temporal_ui_url": TEMPORAL_UI}


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        await launched.close()


class Visitor:
    """One signed-in browser context; collects every console error and failed page script."""

    def __init__(self, page: Page, base: str):
        self.page = page
        self.base = base
        self.errors: list[str] = []
        page.on(
            "console",
            lambda message: self.errors.append(message.text) if message.type == "error" else None,
        )
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    async def open(self, path: str) -> None:
        await self.page.goto(self.base + path)

    def saw_refusal(self) -> None:
        """The browser logs a refused API call (422) as an error; here one was expected."""
        assert self.errors == [
            "Failed to load resource: the server responded with a status of 422"
            " (Unprocessable Entity)"
        ]
        self.errors.clear()

    async def look(self, name: str, skip_rules: tuple[str, ...] = ()) -> None:
        """Screenshots at each width; the page must not be wider than the window, and axe-core
        must find no serious or critical accessibility violation at either width."""
        for width in WIDTHS:
            await self.page.set_viewport_size({"width": width, "height": 900})
            await self.page.screenshot(path=ARTIFACTS / f"{name}-{width}.png", full_page=True)
            overflow = await self.page.evaluate(
                "document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, f"{name} is {overflow}px too wide at {width}px"
            violations = await self.accessibility_violations(skip_rules)
            assert violations == [], f"{name} at {width}px: " + "\n".join(violations)
        await self.page.set_viewport_size({"width": WIDTHS[0], "height": 900})
        assert self.errors == [], f"console errors on {name}: {self.errors}"

    async def accessibility_violations(self, skip_rules: tuple[str, ...] = ()) -> list[str]:
        """axe-core's serious and critical violations on the page as it is now, one line per
        element. Its source is evaluated rather than added as a <script>: the console's CSP
        admits no inline script, and a test must not loosen it."""
        if not await self.page.evaluate("typeof window.axe !== 'undefined'"):
            await self.page.evaluate(AXE_SOURCE)
        violations: list[dict[str, Any]] = await self.page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        )
        return [
            f"{violation['impact']} {violation['id']}: {violation['help']} at"
            f" {node['target']}: {node['failureSummary']}"
            for violation in violations
            if violation["impact"] in AXE_FAILING_IMPACTS and violation["id"] not in skip_rules
            for node in violation["nodes"]
        ]


async def swapped(page: Page, act: Awaitable[object]) -> None:
    """Does `act` and waits until htmx has swapped in and wired up the answer, as a person
    would before going on."""
    await page.evaluate(
        "window.settled = false;"
        "document.body.addEventListener('htmx:afterSettle', () => { window.settled = true },"
        " {once: true})"
    )
    await act
    await page.wait_for_function("() => window.settled === true")


async def signed_in(browser: Browser, served: httpx.AsyncClient, who: Account) -> Visitor:
    page = await (await browser.new_context()).new_page()
    visitor = Visitor(page, str(served.base_url).rstrip("/"))
    await visitor.open("/jobs")
    # Not signed in: the login form, which brings one back afterwards.
    await expect(page).to_have_url(re.compile(r"/login\?next=%2Fjobs$"))
    await page.get_by_label("Username").fill(who.username)
    await page.get_by_label("Password").fill(who.password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(r"/jobs$"))
    return visitor


async def test_a_job_built_in_the_forms_runs_with_its_log_arriving_live(
    browser: Browser,
    served: httpx.AsyncClient,
    http: httpx.AsyncClient,
    operator: Account,
    loopback: str,
) -> None:
    visitor = await signed_in(browser, served, operator)
    page = visitor.page
    await visitor.look("jobs-empty")
    await page.get_by_role("link", name="New job").click()
    document = page.get_by_label("Document (YAML)")
    await document.fill(
        "name: console-built\n"
        "parameters:\n  word: {type: string, default: hello}\n"
        f"targets:\n  names: [{loopback}]\n"
        "steps: []\n"
    )

    step_form = page.get_by_role("form", name="Add a step")
    command = step_form.get_by_label(re.compile(r"^Command \*"))
    await swapped(page, step_form.get_by_label("Action").select_option("ssh.command"))
    await step_form.get_by_label("Step id").fill("talk")
    await swapped(page, step_form.get_by_role("button", name="Add step").click())
    # No command: the problem is shown at its field, announced and tied to it, and the
    # document keeps its steps.
    await expect(command).to_have_attribute("aria-invalid", "true")
    await expect(command).to_have_accessible_description("Field required")
    await expect(step_form.get_by_role("alert")).to_have_text("Field required")
    await expect(document).to_have_value(re.compile(r"steps: \[\]"))
    await command.fill("echo {{ params.word }}; sleep 2; echo two; sleep 1")
    await swapped(page, step_form.get_by_role("button", name="Add step").click())
    await expect(document).to_have_value(re.compile(r"id: talk"))

    await swapped(page, step_form.get_by_label("Action").select_option("ssh.command"))
    await step_form.get_by_label("Step id").fill("after")
    await step_form.get_by_label("talk").check()
    await command.fill("echo done")
    await swapped(page, step_form.get_by_role("button", name="Add step").click())
    await expect(document).to_have_value(re.compile(r"needs:\n\s*- talk"))
    await expect(page.get_by_role("region", name="Check and picture")).to_contain_text(
        "The document is valid."
    )
    steps = page.get_by_role("figure", name="Steps and their order").get_by_role("img")
    await expect(steps).to_have_count(2)
    await expect(steps.first).to_have_accessible_name("talk")
    await expect(steps.nth(1)).to_have_accessible_name("after, after talk")
    await visitor.look("builder")

    await page.get_by_role("button", name="Save job").click()
    await expect(page).to_have_url(re.compile(r"/jobs/[0-9a-f-]{36}$"))
    await expect(page.get_by_role("heading", level=1)).to_contain_text("console-built")
    await visitor.look("job")

    await expect(page.get_by_role("form", name="Run", exact=True)).to_be_visible()
    word = page.get_by_label("word")
    await expect(word).to_have_value("hello")
    await word.fill("one")
    await page.get_by_role("button", name="Run now").click()
    await expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
    log = page.get_by_role("log", name="Log", exact=True)
    run_status = page.get_by_role("status", name="Status", exact=True)
    await expect(log).to_contain_text("one", timeout=30_000)
    # The first line is on screen while the command still runs: the log is followed live.
    assert "two" not in await log.inner_text()
    await expect(run_status).to_have_text("running")
    await visitor.look("run-live")
    await expect(log).to_contain_text("two", timeout=30_000)
    await expect(log).to_contain_text("done", timeout=30_000)
    log_state = page.get_by_role("region", name="Log", exact=True).get_by_role("status")
    await expect(log_state).to_have_text("The run ended: succeeded.", timeout=30_000)
    await expect(run_status).to_have_text("succeeded", timeout=10_000)
    await expect(page.get_by_role("table", name=RUN_GRID).get_by_role("cell")).to_have_count(2)
    workflow = page.get_by_role("link", name=re.compile("in the Temporal Web UI"))
    assert (await workflow.get_attribute("href") or "").startswith(
        f"{TEMPORAL_UI}/namespaces/default/workflows/"
    )
    await visitor.look("run-done")

    # A second version, and its difference from the first.
    job_link = page.get_by_role("link", name="console-built")
    job_path = await job_link.get_attribute("href") or ""
    job = (await http.get(api(job_path), headers=operator.headers)).json()
    changed = {**job["document"], "description": "now described"}
    saved = await http.put(api(job_path), json=changed, headers=operator.headers)
    assert saved.json()["version"] == 2
    await visitor.open(job_path)
    await page.get_by_role("link", name="diff with v1").click()
    await expect(page.get_by_role("insertion")).to_contain_text(["+description: now described"])
    await visitor.look("job-diff")
    # Saved again from the builder unchanged: the same document, so no third version.
    await page.get_by_role("link", name="Edit in the builder").click()
    await expect(page.get_by_label("Document (YAML)")).to_have_value(
        re.compile(r"description: now described")
    )
    await page.get_by_role("button", name="Save job").click()
    await expect(page).to_have_url(re.compile(f"{job_path}$"))
    await expect(page.get_by_role("heading", level=1)).to_contain_text("v2")

    await visitor.open("/runs?status=succeeded")
    await expect(page.get_by_role("table", name="Runs")).to_contain_text("console-built")
    await visitor.look("runs")
    await visitor.open("/")
    await expect(page.get_by_role("region", name="Health")).to_contain_text("worker:ssh")
    await visitor.look("dashboard")


async def test_the_run_log_names_a_retried_steps_tries_shows_any_bytes_and_the_grid_pages(
    app: FastAPI,
    browser: Browser,
    served: httpx.AsyncClient,
    http: httpx.AsyncClient,
    operator: Account,
    loopback: str,
) -> None:
    # On the sshd host (this machine), where its user may write.
    marker = Path(f"/tmp/opsc-console-{uuid.uuid4().hex}")
    # The second try prints NUL and an invalid UTF-8 byte: shown escaped, as the API shows them.
    flaky = (
        f"if [ -e {marker} ]; then printf 'second go a\\0b\\377\\n'; "
        f"else touch {marker}; echo first go; exit 1; fi"
    )
    document = {
        "name": "flaky",
        "targets": {"names": [loopback]},
        "steps": [
            {
                "id": "flaky",
                "action": "ssh.command",
                "with": {"command": flaky},
                "retry": {"attempts": 2, "interval": "100ms"},
            }
        ],
    }
    run_id = await start_job_run(http, operator, document)
    ended = await wait_for(http, operator, run_id, {"succeeded", "failed"})
    marker.unlink(missing_ok=True)
    assert ended["status"] == "succeeded", ended
    visitor = await signed_in(browser, served, operator)

    await visitor.open(f"/runs/{run_id}")

    page = visitor.page
    log = page.get_by_role("region", name="Log", exact=True)
    await expect(log.get_by_role("status")).to_have_text("The run ended: succeeded.")
    assert (await log.get_by_role("log").inner_text()).splitlines() == [
        f"[{loopback}/flaky] first go",
        f"[{loopback}/flaky try 2] second go a\\x00b\\xff",
    ]
    grid = page.get_by_role("region", name=RUN_GRID)
    await expect(grid.get_by_role("table")).to_contain_text("2 tries")

    # A run of 60 targets shows its counts and 50 targets a page; the status filter narrows.
    planted = await plant_run(app, ended["job_id"], 60)
    # The table's rows with data cells: not its header row.
    rows = grid.get_by_role("row").filter(has=page.get_by_role("cell"))
    await visitor.open(f"/runs/{planted}")
    await expect(
        grid.get_by_text("60 targets · pending 10 · succeeded 49 · failed 1", exact=True)
    ).to_be_visible()
    await expect(rows).to_have_count(50)
    await page.get_by_role("link", name="Next").click()
    await expect(rows).to_have_count(10)
    await expect(rows.first).to_contain_text("t050 pending")
    await page.get_by_role("link", name="Previous").click()
    await expect(rows.first).to_contain_text("t000 failed")
    await page.get_by_label("Target status").select_option("failed")
    await page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("exit 1")
    await expect(grid.get_by_role("navigation", name="Pages")).to_have_text("1 in all.")


async def test_a_new_user_sets_up_from_an_empty_install_and_runs_on_a_chosen_target(
    browser: Browser,
    served: httpx.AsyncClient,
    http: httpx.AsyncClient,
    admin: Account,
    viewer: Account,
    sshd: LoopbackSshd,
) -> None:
    visitor = await signed_in(browser, served, admin)
    page = visitor.page
    await visitor.open("/")
    guide = page.get_by_role("region", name="Getting started")
    await expect(guide.get_by_role("listitem")).to_have_text(
        [
            "Add a credential to do",
            "Add a target that uses it to do",
            "Write a job to do",
            "Run it to do",
        ]
    )
    await visitor.look("dashboard-first-run")

    # A credential from a pasted key: the secret goes in, and never comes back.
    await guide.get_by_role("link", name="Add a credential").click()
    await page.get_by_label("Name", exact=True).fill("sshd-key")
    await page.get_by_label("Kind").select_option("ssh_key")
    await page.get_by_label("Username").fill(sshd.username)
    await page.get_by_label("Private key", exact=True).fill(sshd.client_key_text)
    await visitor.look("credential-new")
    await page.get_by_role("button", name="Create credential").click()
    await expect(page.get_by_role("heading", name="Credential sshd-key")).to_be_visible()
    await expect(page.get_by_label("Private key", exact=True)).to_have_value("")
    # Rotated with the same key chosen as a file, which the browser reads into the form.
    await page.get_by_label("Private key from a file").set_input_files(sshd.client_key_path)
    await expect(page.get_by_label("Private key", exact=True)).to_have_value(sshd.client_key_text)
    await page.get_by_role("button", name="Rotate secret").click()
    await expect(page.get_by_role("definition").filter(has_text="UTC")).to_be_visible()
    await visitor.look("credential-edit")

    await page.get_by_role("link", name="Groups", exact=True).click()
    await page.get_by_role("link", name="New group").click()
    await page.get_by_label("Name", exact=True).fill("web")
    await page.get_by_role("button", name="Create group").click()
    await expect(page.get_by_role("heading", name="Group web")).to_be_visible()

    await page.get_by_role("link", name="Targets", exact=True).click()
    await page.get_by_role("link", name="New target").click()
    await page.get_by_label("Name", exact=True).fill("web-1")
    await page.get_by_label("Port").fill(str(sshd.port))
    await page.get_by_label("Credential").select_option(label="sshd-key (ssh_key)")
    await page.get_by_label("Tags").fill("env=test, role=web")
    await page.get_by_role("button", name="Create target").click()
    # No address: the API's problem is shown at that field, announced and tied to it.
    address = page.get_by_label("Address")
    await expect(address).to_have_attribute("aria-invalid", "true")
    await expect(address).to_have_accessible_description(re.compile("Field required"))
    visitor.saw_refusal()
    await visitor.look("target-new-problem")
    await address.fill(sshd.host)
    await page.get_by_role("button", name="Create target").click()
    await expect(page.get_by_role("heading", name="Target web-1")).to_be_visible()
    await page.get_by_role("button", name="Test connection").click()
    result = page.get_by_role("status")
    await expect(result).to_contain_text("Connection succeeded", timeout=30_000)
    await expect(result).to_contain_text(sshd.host_key_fingerprint)
    await visitor.look("target-tested")

    # The group's members by selector, the count shown before they are set.
    await page.get_by_role("link", name="Groups", exact=True).click()
    await page.get_by_role("link", name="web", exact=True).click()
    await page.get_by_label("Tags").fill("role=web")
    await expect(page.get_by_role("status")).to_have_text("1 target matches: web-1")
    await page.get_by_role("button", name="Set members").click()
    await expect(page.get_by_role("definition").filter(has_text="web-1")).to_be_visible()
    await visitor.look("group-members")

    nowhere = {"tags": {"env": "nowhere"}}
    say = {"id": "say", "action": "ssh.command", "with": {"command": "echo from-the-console"}}
    job = await post(http, admin, "/jobs", {"name": "hello", "targets": nowhere, "steps": [say]})
    await visitor.open(f"/jobs/{job['id']}")
    matched = page.get_by_role("status")
    await page.get_by_label("Target names").fill("web-2")
    await expect(matched).to_have_text("no target named 'web-2'")
    visitor.saw_refusal()
    await page.get_by_label("Target names").fill("")
    await page.get_by_role("checkbox", name="web").check()
    await expect(matched).to_have_text("1 target matches: web-1")
    await visitor.look("job-run-chosen-targets")
    await page.get_by_role("button", name="Run now").click()
    await expect(page.get_by_text("The run ended: succeeded.")).to_be_visible(timeout=30_000)
    await expect(page.get_by_text("[web-1/say] from-the-console")).to_be_visible()
    await visitor.open("/")
    await expect(page.get_by_role("region", name="Getting started")).to_have_count(0)
    # An emptied field on an edit form clears the value; the rest stays as it was.
    await page.get_by_role("link", name="Targets", exact=True).click()
    await page.get_by_role("link", name="web-1").click()
    await page.get_by_label("Tags").fill("")
    async with page.expect_event("load"):  # the page reloads once the API has saved it
        await page.get_by_role("button", name="Save").click()
    target = (await http.get(api("/targets"), headers=admin.headers)).json()["items"][0]
    assert (target["tags"], target["groups"], target["port"]) == ({}, ["web"], sshd.port)

    looker = await signed_in(browser, served, viewer)
    await looker.open("/lists/targets")
    await expect(looker.page.get_by_role("link", name="New target")).to_have_count(0)
    await looker.page.get_by_role("link", name="web-1").click()
    await expect(looker.page.get_by_role("heading", name="Target web-1")).to_be_visible()
    await expect(looker.page.get_by_role("button")).to_have_text(["Sign out"])
    for path in ("/lists/credentials", "/lists/groups"):
        await looker.open(path)
        await expect(looker.page.get_by_role("link", name=re.compile("^New "))).to_have_count(0)
        await looker.page.get_by_role("link", name=re.compile("^(sshd-key|web)$")).click()
        await expect(looker.page.get_by_role("button")).to_have_text(["Sign out"])
        await expect(looker.page.get_by_role("textbox")).to_have_count(0)
    await looker.open(f"/jobs/{job['id']}")
    await expect(looker.page.get_by_role("button")).to_have_text(["Sign out"])
    await looker.look("target-as-viewer")


GATED = {
    "name": "gated",
    "steps": [
        {
            "id": "approve",
            "run_once": True,
            "action": "control.approval",
            "with": {"message": "Go on?", "approvers": ["operator"]},
        },
        {
            "id": "after",
            "run_once": True,
            "needs": ["approve"],
            "action": "control.sleep",
            "with": {"duration": "100ms"},
        },
    ],
}


async def test_a_trigger_made_in_the_console_answers_a_test_event_and_logs_it(
    browser: Browser, served: httpx.AsyncClient, http: httpx.AsyncClient, operator: Account
) -> None:
    job = {
        "name": "console-cleanup",
        "parameters": {"mount": {"type": "string"}},
        "steps": [
            {
                "id": "pause",
                "run_once": True,
                "action": "control.sleep",
                "with": {"duration": "10ms"},
            }
        ],
    }
    await post(http, operator, "/jobs", job)
    visitor = await signed_in(browser, served, operator)
    page = visitor.page
    await page.get_by_role("link", name="Triggers").click()
    await page.get_by_role("link", name="New trigger").click()
    await page.get_by_label("Name", exact=True).fill("console-disk")
    await page.get_by_label("Job").select_option(label="console-cleanup")
    await page.get_by_label("Secret", exact=True).fill("a-console-secret-0123456789")
    await page.get_by_label("Parameters").fill('{"mount": "{{ alert.labels.mountpoint }}"}')
    await page.get_by_label("When", exact=True).fill("{{ alert.labels.severity == 'critical' }}")
    await page.get_by_role("button", name="Create trigger").click()
    await expect(page.get_by_role("heading", name="Trigger console-disk")).to_be_visible()
    await expect(page.get_by_label("URL")).to_have_value(re.compile(r"/hooks/[0-9a-f-]{36}$"))
    await expect(page.get_by_role("main")).not_to_contain_text("a-console-secret")

    # The sample alert, as a dry run: the decision and the mapped parameter, and no run.
    await page.get_by_role("button", name="Send test event").click()
    result = page.get_by_role("status")
    await expect(result.get_by_role("definition").first).to_have_text("would_start")
    await expect(result).to_contain_text('"mount": "/var"')
    await expect(result.get_by_role("definition").nth(1)).to_have_text("none")
    # Really started: a link to its run.
    await page.get_by_label("Really start runs").check()
    await page.get_by_role("button", name="Send test event").click()
    await expect(result.get_by_role("definition").first).to_have_text("started")
    run_link = result.get_by_role("link")
    await expect(run_link).to_have_attribute("href", re.compile(r"^/runs/"))

    await page.reload()
    deliveries = (
        page.get_by_role("table", name="Delivery log")
        .get_by_role("row")
        .filter(has=page.get_by_role("cell"))
    )
    await expect(deliveries).to_have_count(2)
    await expect(deliveries.first).to_contain_text("started test")
    await expect(deliveries.nth(1)).to_contain_text("would_start test (dry run)")
    await visitor.look("trigger")


async def test_a_viewer_sees_no_write_controls_and_an_operator_approves(
    browser: Browser,
    served: httpx.AsyncClient,
    http: httpx.AsyncClient,
    admin: Account,
    operator: Account,
    viewer: Account,
) -> None:
    # The admin asks, the operator approves: nobody approves their own run (four eyes).
    run_id = await start_job_run(http, admin, GATED)
    await wait_for(http, operator, run_id, {"waiting_approval"})

    looker = await signed_in(browser, served, viewer)
    page = looker.page
    await expect(page.get_by_role("link", name="New job")).to_have_count(0)
    await looker.open(f"/runs/{run_id}")
    await expect(page.get_by_role("region", name="Approval needed: approve")).to_contain_text(
        "Your role cannot decide approvals."
    )
    await expect(page.get_by_role("button")).to_have_text(["Sign out"])
    await looker.look("run-as-viewer")
    await page.get_by_role("link", name="gated").click()
    await expect(page.get_by_role("form", name="Run", exact=True)).to_have_count(0)
    await expect(page.get_by_text("Your role cannot run jobs.")).to_be_visible()
    await expect(page.get_by_role("link", name="Edit in the builder")).to_have_count(0)
    await looker.look("job-as-viewer")
    # The API refuses the viewer's change, CSRF token and all, whatever the page shows.
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    # A <meta> has no role or label: no user reads it, but a forging script would, so this
    # security check reads it as the console's own script does.
    token = await page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    async with httpx.AsyncClient(base_url=served.base_url, cookies=cookies) as as_viewer:
        refused = await as_viewer.post(
            api(f"/runs/{run_id}/cancel"), headers={"X-CSRF-Token": token}
        )
    assert refused.status_code == 403
    assert "runs:cancel" in refused.json()["detail"]

    approver = await signed_in(browser, served, operator)
    await approver.open(f"/runs/{run_id}")
    run_status = approver.page.get_by_role("status", name="Status", exact=True)
    await expect(run_status).to_have_text("waiting_approval")
    await approver.look("run-waiting-approval")
    await approver.page.get_by_label("Comment").fill("looks fine")
    await approver.page.get_by_role("button", name="Approve").click()
    await expect(run_status).to_have_text("succeeded", timeout=20_000)
    run = await wait_for(http, operator, run_id, {"succeeded"})
    assert run["steps"][0]["outputs"]["by"] == operator.username

    schedule = {"job_id": run["job_id"], "name": "nightly-gate", "cron": "0 3 * * *"}
    await post(http, operator, "/schedules", schedule)
    lists = await signed_in(browser, served, admin)
    await lists.open("/")
    upcoming = lists.page.get_by_role("table", name="Next scheduled runs")
    await expect(upcoming).to_contain_text("nightly-gate")
    await expect(upcoming).to_contain_text("03:00:00 UTC")
    await lists.look("dashboard-with-schedule")
    for name in ("schedules", "targets", "groups", "credentials", "discovery", "libraries"):
        await lists.open(f"/lists/{name}")
        await lists.look(f"list-{name}")
    for name, title, shown in (
        ("channels", "Notification channels", "Nothing here yet."),
        ("users", "Users", "olivia"),
        ("audit", "Audit log", "run.approve"),
    ):
        await lists.open(f"/lists/{name}")
        await expect(lists.page.get_by_role("table", name=title)).to_contain_text(shown)
        await lists.look(f"list-{name}")
    await lists.page.get_by_role("button", name="Sign out").click()
    await expect(lists.page).to_have_url(re.compile(r"/login$"))
    await lists.look("login")


async def test_a_cookie_change_needs_the_session_csrf_token(
    served: httpx.AsyncClient, operator: Account
) -> None:
    signed = await served.post(
        "/login", data={"username": operator.username, "password": operator.password}
    )
    assert signed.status_code == 303
    for cookie in signed.headers.get_list("set-cookie"):
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
    nap = {"id": "nap", "run_once": True, "action": "control.sleep", "with": {"duration": "1ms"}}
    job = {"name": "csrf-check", "steps": [nap]}
    # `served` keeps the login's cookies from here on.
    refused = await served.post(api("/jobs"), json=job)
    assert refused.status_code == 403
    assert "X-CSRF-Token" in refused.json()["detail"]
    page = await served.get("/jobs")
    token = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page.text)
    assert token is not None
    assert "script-src 'self';" in page.headers["content-security-policy"]
    created = await served.post(api("/jobs"), json=job, headers={"X-CSRF-Token": token[1]})
    assert created.status_code == 201, created.text
    # Another origin of the same site (the Temporal Web UI under `up`) gets nothing with it.
    elsewhere = {"Origin": "http://127.0.0.1:8233"}
    assert (await served.get(api("/auth/me"), headers=elsewhere)).status_code == 401
    assert (await served.get("/runs", headers=elsewhere)).status_code == 303
    assert (await served.get(api("/auth/me"))).status_code == 200
    # The console's own form posts, which change nothing, hold to the same rule.
    parsed = await served.post("/builder/parse", data={"document": "name: x"})
    assert parsed.status_code == 403
    parsed = await served.post(
        "/builder/parse", data={"document": "name: x"}, headers={"X-CSRF-Token": token[1]}
    )
    assert parsed.json() == {"name": "x"}


async def test_an_expired_access_cookie_is_renewed_with_the_refresh_cookie(
    served: httpx.AsyncClient, operator: Account
) -> None:
    signed = await served.post(
        "/login", data={"username": operator.username, "password": operator.password}
    )
    refresh = signed.cookies["opsconductor_refresh"]

    async def runs_page(refresh_cookie: str) -> httpx.Response:
        cookies = {"opsconductor_session": "expired", "opsconductor_refresh": refresh_cookie}
        async with httpx.AsyncClient(base_url=served.base_url, cookies=cookies) as browser:
            return await browser.get("/runs")

    renewed = await runs_page(refresh)
    assert renewed.status_code == 200
    assert "olivia" in renewed.text
    assert renewed.cookies["opsconductor_session"] != "expired"
    assert renewed.cookies["opsconductor_refresh"] != refresh
    forged = await runs_page("ort_forged")
    assert (forged.status_code, forged.headers["location"]) == (303, "/login?next=%2Fruns")


class Operation(NamedTuple):
    """How a reader finds one API operation on a docs page: an element's role and name."""

    role: Literal["link", "heading"]
    name: str | re.Pattern[str]  # a string is the whole name


@pytest.mark.parametrize(
    ("path", "operation"),
    [
        # An operation's path in Swagger UI's list, and its section's heading in ReDoc.
        ("/docs", Operation("link", "/api/v1/jobs")),
        # ReDoc names its heading by the anchor link too: "tag/jobs/operation/job.create Job.Create"
        ("/redoc", Operation("heading", re.compile(r" Job\.Create$"))),
    ],
)
async def test_the_api_docs_render_with_nothing_from_another_origin(
    browser: Browser, served: httpx.AsyncClient, path: str, operation: Operation
) -> None:
    page = await (await browser.new_context()).new_page()
    visitor = Visitor(page, str(served.base_url).rstrip("/"))
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await visitor.open(path)
    # ReDoc lays out the whole schema before it shows anything; a busy machine takes a while.
    shown = page.get_by_role(operation.role, name=operation.name, exact=True)
    await expect(shown.first).to_be_attached(timeout=60_000)
    # Swagger UI's own markup nests its buttons and colours its method badges below AA
    # contrast, and FastAPI's page around it has no `lang` (upstream, used unchanged); the
    # rest of axe's rules hold on both pages.
    await visitor.look(f"api{path.replace('/', '-')}", SWAGGER_UI_AXE_FINDINGS)
    assert requested, "the page made no request"
    # ReDoc's search runs in a worker made from a blob of this page: local, not a request out.
    ours = (f"{visitor.base}/", f"blob:{visitor.base}/", "data:")
    assert [url for url in requested if not url.startswith(ours)] == []
