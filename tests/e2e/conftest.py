"""Fixtures of the end-to-end tests."""

import uuid
from collections.abc import AsyncIterator

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.operatorservice.v1 import DeleteNamespaceRequest
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError


@pytest.fixture
async def fresh_namespace(temporal_address: str) -> AsyncIterator[str]:
    """A Temporal namespace of this test alone.

    Other tests run workers on every queue of the shared server (in "default", and some on
    purpose in the fixtures' "partial" namespace), and their pollers stay listed for a while
    after they stop; a worker of ours in the fixtures' "unserved" namespace would in turn spoil
    the tests that rely on nobody polling there. A namespace made here is polled by no one else.
    """
    client = await Client.connect(temporal_address)
    name = f"e2e-cli-{uuid.uuid4().hex[:12]}"
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=name, workflow_execution_retention_period=Duration(seconds=24 * 3600)
        )
    )
    yield name
    try:
        await client.operator_service.delete_namespace(DeleteNamespaceRequest(namespace=name))
    except RPCError as error:  # an external server may not allow it; the name is unique anyway
        print(f"could not delete Temporal namespace {name}: {error}")
