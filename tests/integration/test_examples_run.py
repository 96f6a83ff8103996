"""The example jobs in examples/ validate and run end to end: through the API, over real SSH to
the loopback sshd, with their webhooks landing on the HTTP receiver and a person approving."""

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.fixtures.http_receiver import HttpReceiver
from tests.fixtures.sshd import LoopbackSshd
from tests.identity_helpers import Account, api
from tests.run_helpers import TERMINAL, post, wait_for
from tests.vault_helpers import shared_credential

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]

# The example jobs shipped with the repository: <repo>/examples.
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    return document


async def linux_targets(
    client: httpx.AsyncClient,
    admin: Account,
    sshd: LoopbackSshd,
    names: list[str],
    groups: list[str],
) -> None:
    credential = await shared_credential(
        client,
        admin.headers,
        {
            "name": "loopback-key",
            "kind": "ssh_key",
            "username": sshd.username,
            "secret": {"private_key": sshd.client_key_text},
        },
    )
    for group in groups:
        await post(client, admin, "/target-groups", {"name": group})
    for name in names:
        await post(
            client,
            admin,
            "/targets",
            {
                "name": name,
                "address": sshd.host,
                "port": sshd.port,
                "protocol": "ssh",
                "credential_id": credential["id"],
                "os": "linux",
                "tags": {"os": "linux"},
                "groups": groups,
            },
        )


def steps_of(run: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    table = {
        (target["name"], step["id"]): step for target in run["targets"] for step in target["steps"]
    }
    table.update({("", step["id"]): step for step in run["steps"]})
    return table


async def test_disk_report_runs_on_every_linux_target_and_posts_a_summary(
    http: httpx.AsyncClient,
    admin: Account,
    operator: Account,
    sshd: LoopbackSshd,
    http_receiver: HttpReceiver,
) -> None:
    await linux_targets(http, admin, sshd, ["lin-1", "lin-2"], [])
    job = await post(http, operator, "/jobs", example("disk-report"))
    accepted = await post(
        http,
        operator,
        f"/jobs/{job['id']}/runs",
        {"parameters": {"threshold": 1, "webhook": http_receiver.url + "/hook"}},
    )
    run = await wait_for(http, operator, accepted["id"], TERMINAL)
    assert run["status"] == "succeeded", run
    steps = steps_of(run)
    for target in ("lin-1", "lin-2"):
        usage = steps[(target, "usage")]
        assert usage["status"] == "succeeded"
        assert 1 <= int(usage["stdout"].strip()) <= 100
        assert steps[(target, "flag")]["stdout"].startswith(f"{target} is at ")
    assert steps[("", "summary")]["status"] == "succeeded"
    (hook,) = http_receiver.requests
    assert hook.path == "/hook"
    assert hook.json == {"job": "disk-report", "run": accepted["id"], "failed": "0"}

    logs = (await http.get(api(f"/runs/{accepted['id']}/logs"), headers=operator.headers)).json()
    assert any(line["step_id"] == "flag" and "is at" in line["line"] for line in logs)


async def test_safe_restart_waits_for_approval_then_restarts_and_verifies(
    http: httpx.AsyncClient, admin: Account, operator: Account, sshd: LoopbackSshd
) -> None:
    marker = Path("/tmp/opsconductor-demo/demo.restarted")
    marker.unlink(missing_ok=True)
    await linux_targets(http, admin, sshd, ["app-1", "app-2"], ["app"])
    job = await post(http, operator, "/jobs", example("safe-restart"))
    accepted = await post(http, operator, f"/jobs/{job['id']}/runs", {})
    waiting = await wait_for(http, operator, accepted["id"], {"waiting_approval", *TERMINAL})
    assert waiting["status"] == "waiting_approval", waiting
    assert marker.exists() is False

    await post(
        http,
        admin,  # four eyes: the operator who started the run may not approve it
        f"/runs/{accepted['id']}/approvals",
        {"step": "approve", "decision": "approve"},
    )
    run = await wait_for(http, operator, accepted["id"], TERMINAL)
    assert run["status"] == "succeeded", run
    steps = steps_of(run)
    for target in ("app-1", "app-2"):
        assert steps[(target, "restart")]["status"] == "succeeded"
        assert steps[(target, "verify")]["status"] == "succeeded"
        assert (steps[(target, "rollback")]["status"], steps[(target, "rollback")]["reason"]) == (
            "skipped",
            "condition",
        )
    assert marker.read_text().strip().isdigit()
