"""Temporal history holds no plaintext: every payload is sealed by our codec."""

import base64
import secrets
import uuid

import pytest
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from opsconductor.config import Settings
from opsconductor.contracts.probe import ProbeRequest
from opsconductor.contracts.queues import TaskQueue
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
