"""Connection tests (POST /targets/{id}/test): a real login, run by a worker, since only
workers decrypt credentials."""

import uuid
from datetime import timedelta

from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.service import RPCError

from opsconductor.contracts.connection_tests import (
    ConnectionTestRequest,
    ConnectionTestResult,
    connection_test_workflow_id,
)
from opsconductor.contracts.queues import TaskQueue
from opsconductor.errors import DependencyUnavailable
from opsconductor.services.targets.inventory import get_target
from opsconductor.services.workflows import Workflows
from opsconductor.workflows.connection_test import ConnectionTestWorkflow

CONNECTION_TEST_TIMEOUT = timedelta(seconds=90)


async def test_connection(
    session: AsyncSession, workflows: Workflows, target_id: uuid.UUID
) -> ConnectionTestResult:
    """A real login and a trivial command, run by a worker of the target's protocol (only
    workers decrypt)."""
    target = await get_target(session, target_id)
    try:
        return await workflows.client.execute_workflow(
            ConnectionTestWorkflow.run,
            ConnectionTestRequest(target_id=target.id, protocol=str(target.protocol)),
            id=connection_test_workflow_id(target.id, uuid.uuid4().hex[:8]),
            task_queue=TaskQueue.orchestration.value,
            execution_timeout=CONNECTION_TEST_TIMEOUT,
        )
    except RPCError as error:
        raise DependencyUnavailable(f"Temporal is unavailable: {error.message}") from None
