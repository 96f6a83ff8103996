"""Connection tests (POST /targets/{id}/test): a real login, run by a worker, since only
workers decrypt credentials."""

import uuid
from datetime import timedelta

from temporalio.client import Client
from temporalio.service import RPCError

from opsconductor.contracts.connection_tests import (
    ConnectionTestRequest,
    ConnectionTestResult,
    connection_test_workflow_id,
)
from opsconductor.contracts.queues import TaskQueue
from opsconductor.errors import DependencyUnavailable
from opsconductor.models.target import Protocol, Target
from opsconductor.workflows.connection_test import ConnectionTestWorkflow

WINRM_TESTS_UNAVAILABLE = "WinRM connection tests are not available yet"
CONNECTION_TEST_TIMEOUT = timedelta(seconds=90)


async def probe_connection(client: Client, target: Target) -> ConnectionTestResult:
    """A real login and a trivial command, run by an ssh worker (only workers decrypt)."""
    if target.protocol == Protocol.winrm:
        # The winrm worker runs steps (activities/winrm.py) but implements no `test-connection`:
        # worker/registry.py registers that activity on the ssh queue only. Saying so beats a
        # success nobody checked.
        return ConnectionTestResult(ok=False, detail=WINRM_TESTS_UNAVAILABLE)
    try:
        return await client.execute_workflow(
            ConnectionTestWorkflow.run,
            ConnectionTestRequest(target_id=target.id),
            id=connection_test_workflow_id(target.id, uuid.uuid4().hex[:8]),
            task_queue=TaskQueue.orchestration.value,
            execution_timeout=CONNECTION_TEST_TIMEOUT,
        )
    except RPCError as error:
        raise DependencyUnavailable(f"Temporal is unavailable: {error.message}") from None
