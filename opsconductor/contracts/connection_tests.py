"""The connection-test contract: `POST /targets/{id}/test` starts the connection-test workflow,
which runs `test-connection` once on the `ssh` queue, or `test-winrm-connection` on the `winrm`
queue for a WinRM target (only workers hold decrypted credentials)."""

import uuid

from pydantic import BaseModel

from opsconductor.contracts import activity_contract

CONNECTION_TEST_WORKFLOW = "connection-test"


def connection_test_workflow_id(target_id: uuid.UUID, attempt: str) -> str:
    """One workflow per test: `attempt` tells two tests of the same target apart."""
    return f"connection-test-{target_id}-{attempt}"


class ConnectionTestRequest(BaseModel):
    """The connection-test workflow's input: an id only, the worker reads everything else."""

    target_id: uuid.UUID
    # Which queue's test runs; tests started before WinRM had one carry none and were ssh.
    protocol: str = "ssh"


class ConnectionTestResult(BaseModel):
    ok: bool
    latency_ms: float | None = None
    detail: str
    host_key_fingerprint: str | None = None


@activity_contract
async def test_connection(request: ConnectionTestRequest) -> ConnectionTestResult:
    """A real login and `true` on the target (activities/connection_test.py)."""
    raise NotImplementedError("a contract: ssh workers register its implementation")


@activity_contract
async def test_winrm_connection(request: ConnectionTestRequest) -> ConnectionTestResult:
    """A real WinRM login and `hostname` in a WinRS shell (activities/connection_test.py)."""
    raise NotImplementedError("a contract: winrm workers register its implementation")
