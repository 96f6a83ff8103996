"""SSH steps through the API against the loopback sshd: retries that succeed on a later attempt,
a step timeout, and a run log followed live while the command still prints."""

import json
import uuid
from pathlib import Path

import httpx
import pytest

from tests.identity_helpers import Account, api
from tests.run_helpers import run_on_target, start_job_run, target_steps

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


async def test_a_retry_succeeds_on_a_later_attempt(
    http: httpx.AsyncClient, operator: Account, loopback: str
) -> None:
    marker = Path(f"/tmp/opsc-retry-{uuid.uuid4().hex}")
    run = await run_on_target(
        http,
        operator,
        loopback,
        {
            "id": "flaky",
            "action": "ssh.command",
            # Fails the first time (leaving the marker), succeeds the second.
            "with": {
                "command": f"if [ -e {marker} ]; then echo ok; else touch {marker}; exit 3; fi"
            },
            "retry": {"attempts": 3, "interval": "100ms"},
        },
    )
    marker.unlink(missing_ok=True)
    assert run["status"] == "succeeded"
    flaky = target_steps(run)["flaky"]
    assert (flaky["status"], flaky["attempts"], flaky["stdout"]) == ("succeeded", 2, "ok")


async def test_a_step_timeout_fails_the_step_and_stops_the_command(
    http: httpx.AsyncClient, operator: Account, loopback: str
) -> None:
    run = await run_on_target(
        http,
        operator,
        loopback,
        {"id": "slow", "action": "ssh.command", "with": {"command": "sleep 30"}, "timeout": "1s"},
        {"id": "after", "needs": ["slow"], "action": "ssh.command", "with": {"command": "true"}},
    )
    assert run["status"] == "failed"
    steps = target_steps(run)
    assert (steps["slow"]["status"], steps["slow"]["reason"]) == (
        "failed",
        "timed out (start_to_close)",
    )
    assert (steps["after"]["status"], steps["after"]["reason"]) == ("skipped", "upstream_failed")


async def test_the_log_is_followed_live_until_the_run_ends(
    http: httpx.AsyncClient,
    served: httpx.AsyncClient,
    operator: Account,
    viewer: Account,
    loopback: str,
) -> None:
    run_id = await start_job_run(
        http,
        operator,
        {
            "name": "slow-talker",
            "targets": {"names": [loopback]},
            "steps": [
                {
                    "id": "talk",
                    "action": "ssh.command",
                    "with": {"command": "echo one; sleep 2; echo two; sleep 2; echo three"},
                }
            ],
        },
    )
    lines: list[str] = []
    ending: dict[str, str] = {}
    async with served.stream(
        "GET", api(f"/runs/{run_id}/logs"), params={"follow": "true"}, headers=viewer.headers
    ) as stream:
        event = ""
        async for raw in stream.aiter_lines():
            if raw.startswith("event: "):
                event = raw.removeprefix("event: ")
            elif raw.startswith("data: ") and event == "end":
                ending = json.loads(raw.removeprefix("data: "))
            elif raw.startswith("data: "):
                entry = json.loads(raw.removeprefix("data: "))
                lines.append(entry["line"])
                if entry["line"] == "one":
                    # The first line arrived while the command still runs: this is live.
                    run = (await http.get(api(f"/runs/{run_id}"), headers=viewer.headers)).json()
                    assert run["status"] == "running"
    assert lines == ["one", "two", "three"]
    assert ending == {"status": "succeeded"}
