"""Workflow histories replayed with the current workflow code.

A change that makes the job-run or batch workflows decide differently on replay would strand
every run in flight at upgrade time. The histories in tests/histories/ were recorded from real
runs (with a fixed test key, so their encrypted payloads stay readable); each must replay
without a non-determinism error. Fresh runs of the same scenarios are replayed too, and with
OPSCONDUCTOR_RECORD_HISTORIES=1 they replace the recorded ones (do that only on purpose, when a
change is made compatible with `workflow.patched`).
"""

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.common import HeaderCodecBehavior
from temporalio.worker import Interceptor, Replayer

from opsconductor.config import Settings
from opsconductor.contracts.runs import ApprovalDecision, RunStatus
from opsconductor.security.keys import load_process_keys
from opsconductor.temporal.client import connect, data_converter, interceptors
from opsconductor.worker.main import WORKFLOW_RUNNER
from opsconductor.worker.registry import WORKFLOWS, WorkerResources
from tests.engine_helpers import start_run, web_targets
from tests.fixtures.http_receiver import HttpReceiver

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]

HISTORIES = Path(__file__).parents[1] / "histories"
# Not a secret: it only encrypts the payloads of the recorded test histories.
HISTORY_KEY = base64.b64encode(b"opsconductor-test-histories-key!").decode()


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"master_key": HISTORY_KEY}


def replayer(settings: Settings) -> Replayer:
    return Replayer(
        workflows=WORKFLOWS,
        data_converter=data_converter(load_process_keys(settings)),
        workflow_runner=WORKFLOW_RUNNER,
        # As the workers run them: the same interceptors, headers through the codec.
        interceptors=[item for item in interceptors(settings) if isinstance(item, Interceptor)],
        header_codec_behavior=HeaderCodecBehavior.CODEC,
    )


async def each(histories: list[WorkflowHistory]) -> AsyncIterator[WorkflowHistory]:
    for history in histories:
        yield history


def call(step_id: str, path: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "action": "http.request",
        "with": {"url": "{{ target.address }}" + path, "method": "POST"},
        **extra,
    }


SCENARIOS: dict[str, dict[str, Any]] = {
    "batches-failure-and-summary": {
        "name": "replay-batches",
        "steps": [
            {**call("deploy", "/deploy-{{ target.name }}"), "retry": {"attempts": 2}},
            call("verify", "/verify", needs=["deploy"], when="{{ not steps.deploy.failed }}"),
            {
                "id": "report",
                "run_once": True,
                "needs": ["verify"],
                "when": "{{ true }}",
                "action": "control.sleep",
                "with": {"duration": "{{ '10ms' if steps.deploy.failed else '20ms' }}"},
            },
        ],
    },
    "approval-then-targets": {
        "name": "replay-approval",
        "steps": [
            {
                "id": "approve",
                "run_once": True,
                "action": "control.approval",
                "with": {"message": "go?"},
            },
            call("act", "/act", needs=["approve"]),
        ],
    },
}


async def run_scenario(
    client: Client, resources: WorkerResources, receiver: HttpReceiver, name: str
) -> list[WorkflowHistory]:
    receiver.respond("/deploy-web-3", status=500)
    handle = await start_run(
        client, resources.sessionmaker, SCENARIOS[name], web_targets(receiver.url, 3)
    )
    if name == "approval-then-targets":
        for _ in range(300):
            if (await handle.query("progress"))["waiting_approval"]:
                break
            await asyncio.sleep(0.1)
        await handle.execute_update(
            "decide-approval",
            ApprovalDecision(step="approve", approve=True, by="olga", role="operator"),
        )
    summary = await handle.result()
    assert summary.status in (RunStatus.succeeded, RunStatus.failed)
    ids = [handle.id, f"{handle.id}-s1-b0", f"{handle.id}-s1-b2"]
    return [await client.get_workflow_handle(item).fetch_history() for item in ids]


async def test_recorded_histories_replay_with_the_current_code(settings: Settings) -> None:
    files = sorted(HISTORIES.glob("*.json"))
    assert files, f"no recorded histories in {HISTORIES}"
    recorded = [json.loads(path.read_text()) for path in files]
    # Child workflow ids derive from the parent's: replay needs the original ids.
    histories = [
        WorkflowHistory.from_json(item["workflow_id"], item["history"]) for item in recorded
    ]
    results = await replayer(settings).replay_workflows(
        each(histories), raise_on_replay_failure=False
    )
    failures = {workflow_id: str(error) for workflow_id, error in results.replay_failures.items()}
    assert failures == {}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_fresh_runs_replay_deterministically(
    settings: Settings, worker_resources: WorkerResources, http_receiver: HttpReceiver, name: str
) -> None:
    client = await connect(settings)
    histories = await run_scenario(client, worker_resources, http_receiver, name)
    await replayer(settings).replay_workflows(each(histories))
    if os.environ.get("OPSCONDUCTOR_RECORD_HISTORIES") == "1":
        HISTORIES.mkdir(exist_ok=True)
        for index, history in enumerate(histories):
            recorded = {"workflow_id": history.workflow_id, "history": history.to_json_dict()}
            (HISTORIES / f"{name}-{index}.json").write_text(json.dumps(recorded))
