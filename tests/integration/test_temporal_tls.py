"""OPSCONDUCTOR_TEMPORAL_TLS_*: our processes reach Temporal over mutual TLS. The dev server
speaks plain gRPC, so a TLS proxy (our test CA, client certificate required) stands in front of
it, as a real cluster's frontend would."""

import uuid
from pathlib import Path

import pytest

from opsconductor.config import Settings
from opsconductor.contracts.probe import ProbeRequest
from opsconductor.contracts.queues import TaskQueue
from opsconductor.temporal.client import connect
from opsconductor.workflows.probe import FleetProbeWorkflow
from tests.fixtures.tls_proxy import make_tls_material, tls_proxy

pytestmark = pytest.mark.integration

SERVER_NAME = "temporal.test"


@pytest.mark.usefixtures("workers")
async def test_a_client_with_the_tls_settings_runs_workflows_over_mutual_tls(
    settings: Settings, temporal_address: str, tmp_path: Path
) -> None:
    material = make_tls_material(tmp_path, SERVER_NAME)
    async with tls_proxy(material, temporal_address) as address:
        over_tls = settings.model_copy(
            update={
                "temporal_address": address,
                "temporal_tls_ca": material.ca,
                "temporal_tls_cert": material.client_cert,
                "temporal_tls_key": material.client_key,
                "temporal_tls_server_name": SERVER_NAME,
            }
        )
        report = await (await connect(over_tls)).execute_workflow(
            FleetProbeWorkflow.run,
            ProbeRequest(queues=[TaskQueue.http.value], wait_seconds=10),
            id=f"probe-{uuid.uuid4()}",
            task_queue=TaskQueue.orchestration.value,
        )
        assert report.all_ok

        # The proxy demands the client certificate: without it, no connection.
        no_client_cert = over_tls.model_copy(
            update={"temporal_tls_cert": None, "temporal_tls_key": None}
        )
        with pytest.raises(RuntimeError):
            await connect(no_client_cert)
