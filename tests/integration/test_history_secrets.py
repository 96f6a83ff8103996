"""A job echoes a planted secret over SSH. What the Temporal server keeps, read the way anyone
with access to it would (`temporal workflow show --output json`, no codec), holds neither the
secret nor the command's output; our codec endpoint decodes the same payloads."""

import asyncio
import base64
import json
import uuid
from typing import Any

import httpx
import pytest

from opsconductor.config import Settings
from opsconductor.embedded.temporal import temporal_executable
from tests.identity_helpers import Account
from tests.run_helpers import run_on_target, target_steps
from tests.vault_helpers import planted_secret

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


async def raw_history(settings: Settings, workflow_id: str) -> str:
    assert settings.temporal_address is not None
    process = await asyncio.create_subprocess_exec(
        temporal_executable(),
        "workflow",
        "show",
        "--workflow-id",
        workflow_id,
        "--output",
        "json",
        "--address",
        settings.temporal_address,
        "--namespace",
        settings.temporal_namespace,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


# Plain by design, and holding no user data: search attributes (indexed by the server: job id,
# job name, who triggered) and the SDK's own bookkeeping of a local activity (its sequence
# number, type and times, under the marker's `details.data`; the result beside it is sealed), and
# of a `workflow.patched` marker (the patch id, under `details.patch-data`).
SERVER_READABLE = {"searchAttributes", "data", "patch-data"}


def payloads_of(history: Any) -> list[dict[str, Any]]:
    """Every payload object in a JSON history, wherever it sits, but the server-readable ones."""
    found: list[dict[str, Any]] = []
    if isinstance(history, dict):
        if "metadata" in history and "data" in history:
            found.append(history)
        for key, value in history.items():
            if key not in SERVER_READABLE:
                found.extend(payloads_of(value))
    elif isinstance(history, list):
        for value in history:
            found.extend(payloads_of(value))
    return found


async def test_history_holds_no_secret_and_no_output_while_the_codec_decodes_it(
    http: httpx.AsyncClient,
    admin: Account,
    operator: Account,
    viewer: Account,
    loopback: str,
    settings: Settings,
) -> None:
    secret = await planted_secret(http, admin.headers, "history-secret", granted_to=["operator"])
    marker = f"marker-{uuid.uuid4().hex}"
    run = await run_on_target(
        http,
        operator,
        loopback,
        {
            "id": "echo",
            "action": "ssh.command",
            "with": {"command": f"echo {marker}; echo {{{{ secret('history-secret') }}}}"},
        },
    )
    assert run["status"] == "succeeded"
    assert target_steps(run)["echo"]["stdout"] == f"{marker}\n********"

    # The run's one target fits in one batch, which ran in the run's own workflow: the step's
    # result sits in its history.
    texts = [await raw_history(settings, run["workflow_id"])]
    for text in texts:
        assert secret not in text
        assert marker not in text
    payloads = [payload for text in texts for payload in payloads_of(json.loads(text))]
    assert payloads
    assert {payload["metadata"]["encoding"] for payload in payloads} == {
        "YmluYXJ5L2VuY3J5cHRlZA=="  # base64 of binary/encrypted
    }

    decoded = await http.post("/codec/decode", json={"payloads": payloads}, headers=viewer.headers)
    assert decoded.status_code == 200, decoded.text
    plain = "\n".join(
        base64.b64decode(payload.get("data", "")).decode() for payload in decoded.json()["payloads"]
    )
    # Decoding shows what the run saw: the output, with the secret masked, never the secret.
    assert marker in plain
    assert secret not in plain
