"""The Temporal Web UI under `opsconductor up`, in a real browser (Debian's chromium, driven by
Playwright): a run over the loopback sshd opened at its workflow page shows its parameter and
its step's output in clear, decoded by our codec endpoint through the UI's real CORS preflight;
a call carrying an API token (what passAccessToken sends) is checked, not waved through; and
the Temporal CLI decodes the same history with `--codec-endpoint` and `--codec-auth`."""

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from opsconductor.embedded.temporal import temporal_executable
from tests.e2e.test_up import Command, Stack, wait_healthy
from tests.fixtures.sshd import LoopbackSshd
from tests.identity_helpers import ADMIN_PASSWORD
from tests.process_stack import TERMINAL, ApiClient
from tests.vault_helpers import key_credential, sshd_target

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parents[1] / "artifacts" / "temporal-ui"
CODEC_BANNER = "Codec Server could not connect"
RUN_ENDS_WITHIN = 120.0
SHOWN_WITHIN_MS = 60_000


@dataclass(frozen=True)
class UpWithRun:
    stack: Stack
    up: Command
    admin: ApiClient
    run_id: str
    planted: str
    output: str


@pytest.fixture(scope="module")
def up_with_run(
    tmp_path_factory: pytest.TempPathFactory, sshd: LoopbackSshd
) -> Iterator[UpWithRun]:
    stack = Stack.allocate(tmp_path_factory.mktemp("temporal-ui"))
    with stack.up("up", OPSCONDUCTOR_ADMIN_PASSWORD=ADMIN_PASSWORD) as up:
        wait_healthy(stack, up)
        admin = ApiClient(stack.api_url)
        credential = admin.ok("POST", "/credentials", json=key_credential(sshd))
        admin.ok("POST", "/targets", json=sshd_target(sshd, credential["id"]))
        planted = f"planted-{uuid.uuid4().hex[:12]}"
        output = f"printed-{uuid.uuid4().hex[:12]}"
        document = {
            "name": "ui-decodes",
            "parameters": {"marker": {"type": "string"}},
            "targets": {"names": ["loopback"]},
            "steps": [
                {"id": "usage", "action": "ssh.command", "with": {"command": f"echo {output}"}}
            ],
        }
        run_id = admin.start(document, {"marker": planted})
        deadline = time.monotonic() + RUN_ENDS_WITHIN
        while (run := admin.ok("GET", f"/runs/{run_id}"))["status"] not in TERMINAL:
            assert time.monotonic() < deadline, f"run still {run['status']}\n{up.report()}"
            time.sleep(0.5)
        assert run["status"] == "succeeded", run
        yield UpWithRun(stack, up, admin, run_id, planted, output)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        await launched.close()


async def page_text(page: Page) -> str:
    return str(await page.evaluate("document.body.innerText"))


async def wait_for_text(page: Page, *needles: str) -> str:
    """The page's text once it holds every needle (the UI decodes after it renders)."""
    for _ in range(SHOWN_WITHIN_MS // 250):
        text = await page_text(page)
        if all(needle in text for needle in needles):
            return text
        await asyncio.sleep(0.25)
    return await page_text(page)


async def test_the_ui_shows_a_run_decoded_with_no_codec_banner(
    up_with_run: UpWithRun, browser: Browser
) -> None:
    context = await browser.new_context(viewport={"width": 1440, "height": 1000})
    await context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = await context.new_page()
    codec_answers: list[tuple[str, int]] = []
    page.on(
        "response",
        lambda answer: (
            codec_answers.append((answer.request.method, answer.status))
            if "/codec/" in answer.url
            else None
        ),
    )
    ui = f"{up_with_run.stack.ui_url}/namespaces/default/workflows"
    await page.goto(f"{ui}/run-{up_with_run.run_id}")
    await page.get_by_text("Input", exact=True).wait_for()
    await page.screenshot(path=ARTIFACTS / "workflow.png", full_page=True)
    text = await page_text(page)
    report = f"codec calls: {codec_answers}\n--- page:\n{text[:4000]}\n{up_with_run.up.report()}"
    assert CODEC_BANNER not in text, report
    assert ("OPTIONS", 200) in codec_answers, report
    assert all(status == 200 for _, status in codec_answers), report
    # The input is long (the compiled plan); its copy button copies what the UI shows.
    await page.get_by_role("button", name="Copy").first.click()
    shown_input = str(await page.evaluate("navigator.clipboard.readText()"))
    assert up_with_run.planted in shown_input, shown_input[:4000]

    # The step ran in the batch child; its output is in the child's history.
    await page.goto(f"{ui}/run-{up_with_run.run_id}-s0-b0/history")
    await asyncio.sleep(5)
    await page.screenshot(path=ARTIFACTS / "history.png", full_page=True)
    text = await page_text(page)
    print(text)
    assert up_with_run.output in text, text[:4000]
    assert CODEC_BANNER not in text
    await context.close()


async def test_a_token_sent_from_the_ui_origin_is_checked(
    up_with_run: UpWithRun, browser: Browser
) -> None:
    """What the UI sends with passAccessToken and includeCredentials, from its own origin: the
    browser's preflight asks for authorization, content-type and x-namespace in credentials
    mode; a valid API token decodes, a wrong one is refused (the header reached the API)."""
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(up_with_run.stack.ui_url + "/")
    encoded = up_with_run.admin.http.post(
        f"{up_with_run.stack.api_url}/codec/encode",
        json={"payloads": [{"metadata": {"encoding": "YmluYXJ5L3BsYWlu"}, "data": "aGk="}]},
    ).json()
    call = """async ([url, token, body]) => {
        const answer = await fetch(url, {
            method: 'POST',
            credentials: 'include',
            headers: {
                'Content-Type': 'application/json',
                'X-Namespace': 'default',
                'Authorization': 'Bearer ' + token,
            },
            body: JSON.stringify(body),
        });
        return [answer.status, await answer.text()];
    }"""
    url = f"{up_with_run.stack.api_url}/codec/decode"
    status, body = await page.evaluate(call, [url, up_with_run.admin.token, encoded])
    assert status == 200, body
    assert json.loads(body)["payloads"][0]["data"] == "aGk="
    status, body = await page.evaluate(call, [url, "not-a-token", encoded])
    assert status == 401, body
    await context.close()


def test_the_temporal_cli_decodes_with_an_api_token(up_with_run: UpWithRun) -> None:
    shown = subprocess.run(
        [
            temporal_executable(),
            "workflow",
            "show",
            "--address",
            f"127.0.0.1:{up_with_run.stack.temporal_port}",
            "--workflow-id",
            f"run-{up_with_run.run_id}",
            "--codec-endpoint",
            f"{up_with_run.stack.api_url}/codec",
            "--codec-auth",
            f"Bearer {up_with_run.admin.token}",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert up_with_run.planted in shown.stdout
    assert up_with_run.output in shown.stdout
    # Without the token the codec refuses, so the CLI cannot show the history decoded.
    refused = subprocess.run(
        [
            temporal_executable(),
            "workflow",
            "show",
            "--address",
            f"127.0.0.1:{up_with_run.stack.temporal_port}",
            "--workflow-id",
            f"run-{up_with_run.run_id}",
            "--codec-endpoint",
            f"{up_with_run.stack.api_url}/codec",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert up_with_run.planted not in refused.stdout
