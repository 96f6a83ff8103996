"""The Temporal Web UI under `opsconductor up`, in a real browser (Debian's chromium, driven by
Playwright): a run over the loopback sshd opened at its workflow page shows its parameter and
its step's output (read by a later step, so carried in history) in clear, decoded by our codec
endpoint through the UI's real CORS preflight; a call carrying an API token (what
passAccessToken sends) is checked, not waved through; and the Temporal CLI decodes the same
history with `--codec-endpoint` and `--codec-auth`."""

import asyncio
import base64
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
            # A later step reads the first one's output, so that output crosses history (sealed)
            # with the first step's result; unread output stays on the step's record only. A
            # script runs as an activity of its own, whose result the history's list shows
            # inline; `ssh.command` steps run in chunks, whose results (every target's) the
            # list cuts short, and the `temporal` CLI test below reads those whole.
            "steps": [
                {"id": "usage", "action": "ssh.script", "with": {"script": f"echo {output}\n"}},
                {
                    "id": "reads",
                    "needs": ["usage"],
                    "action": "ssh.command",
                    "with": {"command": "echo read {{ steps.usage.stdout }}"},
                },
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


def api_log(stack: Stack) -> str:
    return (stack.data_dir / "logs" / "api.log").read_text()


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
    # (status, X-Namespace) of each codec call: the browser sends that header only after a
    # preflight allowed it (Chromium does not show preflights to Playwright).
    codec_answers: list[tuple[int, str | None]] = []
    page.on(
        "response",
        lambda answer: (
            codec_answers.append((answer.status, answer.request.headers.get("x-namespace")))
            if "/codec/" in answer.url
            else None
        ),
    )
    ui = f"{up_with_run.stack.ui_url}/namespaces/default/workflows"
    await page.goto(f"{ui}/run-{up_with_run.run_id}")
    shown = page.get_by_test_id("input-and-result")
    await shown.get_by_role("textbox", name="Input").wait_for()
    # The UI's own verdict on its codec calls: the banner's opposite.
    await page.get_by_test_id("data-encoder-status-success").wait_for()
    # The decoded input is drawn after the codec answers: on a busy machine, a moment later.
    text = await wait_for_text(page, '"job_name": "ui-decodes"')
    await page.screenshot(path=ARTIFACTS / "workflow.png", full_page=True)
    report = f"codec calls: {codec_answers}\n--- page:\n{text[:4000]}\n{up_with_run.up.report()}"
    assert CODEC_BANNER not in text, report
    assert codec_answers, report
    assert set(codec_answers) == {(200, "default")}, report
    assert '"job_name": "ui-decodes"' in text, report
    # ... and the API's access log shows those preflights answered.
    access = [json.loads(line) for line in api_log(up_with_run.stack).splitlines()]
    preflights = {
        entry["status"]
        for entry in access
        if (entry.get("method"), entry.get("path")) == ("OPTIONS", "/codec/decode")
    }
    assert preflights == {200}, report
    # The input (the compiled plan) is longer than its box; its copy button copies what the
    # UI decoded, parameters included.
    await shown.get_by_role("button").first.click()
    copied = str(await page.evaluate("navigator.clipboard.readText()"))
    assert f'"marker": "{up_with_run.planted}"' in copied, copied

    # One target fits in one batch, which ran in the run's own workflow: the step's result
    # (the output) is in the run's history.
    await page.goto(f"{ui}/run-{up_with_run.run_id}")
    await page.wait_for_url("**/timeline")
    await page.goto(page.url.replace("/timeline", "/history"))
    text = await wait_for_text(page, up_with_run.output)
    await page.screenshot(path=ARTIFACTS / "run-history.png", full_page=True)
    assert f'"stdout":"{up_with_run.output}' in text, text[:4000]
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


def payload_texts(node: Any) -> list[str]:
    """The data of every payload in `temporal workflow show -o json`, base64 decoded."""
    if isinstance(node, list):
        return [text for item in node for text in payload_texts(item)]
    if not isinstance(node, dict):
        return []
    if "metadata" in node and "encoding" in node["metadata"]:
        return [base64.b64decode(node.get("data", "")).decode(errors="replace")]
    return [text for value in node.values() for text in payload_texts(value)]


def workflow_show(stack: Stack, workflow_id: str, *codec: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            temporal_executable(),
            "workflow",
            "show",
            "--address",
            f"127.0.0.1:{stack.temporal_port}",
            "--workflow-id",
            workflow_id,
            *codec,
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_temporal_cli_decodes_with_an_api_token(up_with_run: UpWithRun) -> None:
    stack, run_id = up_with_run.stack, up_with_run.run_id
    codec = ["--codec-endpoint", f"{stack.api_url}/codec"]
    auth = ["--codec-auth", f"Bearer {up_with_run.admin.token}"]
    answer = workflow_show(stack, f"run-{run_id}", *codec, *auth)
    assert answer.returncode == 0, answer.stderr
    shown = "\n".join(payload_texts(json.loads(answer.stdout)))
    assert f'"marker":"{up_with_run.planted}"' in shown
    assert f'"stdout":"{up_with_run.output}"' in shown
    # Without the token the codec refuses, and the CLI shows nothing decoded.
    refused = workflow_show(stack, f"run-{run_id}", *codec)
    assert refused.returncode != 0
    assert up_with_run.planted not in refused.stdout + refused.stderr
