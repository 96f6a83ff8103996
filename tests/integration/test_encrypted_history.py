"""Temporal history holds no plaintext: every payload is sealed by our codec."""

import asyncio
import base64
import json
import secrets
import subprocess
import uuid

import pytest
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client, WorkflowExecutionStatus

from opsconductor.config import Settings
from opsconductor.contracts.probe import ProbeRequest
from opsconductor.contracts.queues import TaskQueue
from opsconductor.embedded.temporal import temporal_executable
from opsconductor.security.keys import load_process_keys
from opsconductor.temporal.client import connect
from opsconductor.temporal.codec import EncryptionCodec, PayloadDecryptionError
from opsconductor.workflows.probe import FleetProbeWorkflow

pytestmark = pytest.mark.integration


@pytest.mark.usefixtures("workers")
async def test_history_payloads_are_encrypted(settings: Settings, temporal_address: str) -> None:
    workflow_id = f"probe-{uuid.uuid4()}"
    report = await (await connect(settings)).execute_workflow(
        FleetProbeWorkflow.run,
        ProbeRequest(queues=["ssh", "http"], wait_seconds=10),
        id=workflow_id,
        task_queue=TaskQueue.orchestration.value,
    )
    assert report.all_ok

    # What anyone with access to the Temporal server (or its Web UI without our codec) sees.
    raw = await Client.connect(temporal_address, namespace=settings.temporal_namespace)
    history = await raw.get_workflow_handle(workflow_id).fetch_history()
    payloads = [
        payload
        for event in history.events
        for field in (
            event.workflow_execution_started_event_attributes.input,
            event.activity_task_scheduled_event_attributes.input,
            event.activity_task_completed_event_attributes.result,
            event.workflow_execution_completed_event_attributes.result,
        )
        for payload in field.payloads
    ]
    assert len(payloads) >= 6  # workflow input and result, two activity inputs and results
    for payload in payloads:
        assert payload.metadata["encoding"] == b"binary/encrypted"
        assert b"ssh" not in payload.data
        assert b"wait_seconds" not in payload.data
    assert b"wait_seconds" not in history.to_json().encode()


def codec_for(settings: Settings) -> EncryptionCodec:
    return EncryptionCodec(load_process_keys(settings))


async def test_retired_keys_still_decode_and_unknown_keys_are_refused(settings: Settings) -> None:
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'{"secret": "value"}')
    (sealed,) = await codec_for(settings).encode([plain])

    new_key = SecretStr(base64.b64encode(secrets.token_bytes(32)).decode())
    assert settings.master_key is not None
    rotated = settings.model_copy(
        update={"master_key": new_key, "master_keys_old": [settings.master_key]}
    )
    assert await codec_for(rotated).decode([sealed]) == [plain]

    stranger = settings.model_copy(update={"master_key": new_key, "master_keys_old": []})
    with pytest.raises(PayloadDecryptionError, match="unknown key"):
        await codec_for(stranger).decode([sealed])


async def failure_message(settings: Settings, failure: Failure) -> str:
    """A failure as our workers write it: its message sealed in the encoded attributes."""
    (attributes,) = await codec_for(settings).decode([failure.encoded_attributes])
    message: str = json.loads(attributes.data)["message"]
    return message


@pytest.mark.usefixtures("workers")
async def test_a_workflow_started_with_a_plain_payload_fails_and_runs_nothing(
    settings: Settings, temporal_address: str
) -> None:
    # What anyone who reaches the Temporal frontend can do without our master key.
    workflow_id = f"plain-{uuid.uuid4()}"
    started = subprocess.run(
        [
            temporal_executable(),
            "workflow",
            "start",
            "--address",
            temporal_address,
            "--namespace",
            settings.temporal_namespace,
            "--type",
            "fleet-probe",
            "--task-queue",
            TaskQueue.orchestration.value,
            "--workflow-id",
            workflow_id,
            "--input",
            '{"queues": ["ssh"]}',
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert started.returncode == 0, started.stderr

    raw = await Client.connect(temporal_address, namespace=settings.temporal_namespace)
    handle = raw.get_workflow_handle(workflow_id)
    # The workflow itself fails (no workflow task retried for ever), with the worker's reason.
    for _ in range(200):
        if (await handle.describe()).status == WorkflowExecutionStatus.FAILED:
            break
        await asyncio.sleep(0.1)
    else:
        await handle.terminate("test over")
        pytest.fail("the workflow started with a plain payload did not fail")
    history = await handle.fetch_history()
    (failed,) = [
        event.workflow_execution_failed_event_attributes.failure
        for event in history.events
        if event.HasField("workflow_execution_failed_event_attributes")
    ]
    assert "refused a payload that is not encrypted" in await failure_message(settings, failed)
    scheduled = [
        event
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
        or event.HasField("marker_recorded_event_attributes")
        or event.HasField("start_child_workflow_execution_initiated_event_attributes")
    ]
    assert scheduled == []
