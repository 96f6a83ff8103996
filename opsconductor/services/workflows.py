"""What a service needs, beyond the request's session, to act on Temporal: the client, and the
sessionmaker for the side transaction that records a refused launch (`db.commit_then_launch`).

The rule (issue 16): routers parse, authorize and call one service function; they never hold
the Temporal client, commit, or name a workflow, update or signal. A route whose service acts
on Temporal takes `WorkflowsDep` (api/deps.py) and hands the `Workflows` it gets to the service
untouched; only services read `client`.
"""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from opsconductor.errors import Conflict, DependencyUnavailable


class WorkflowGone(Conflict):
    """The workflow has no open execution: it ended, or it never started."""


@dataclass(frozen=True, slots=True)
class Workflows:
    client: Client
    sessionmaker: async_sessionmaker[AsyncSession]
    # The public URL of this OpsConductor: workflows started here link back to it.
    console_url: str

    async def is_open(self, workflow_id: str) -> bool:
        """Whether the workflow has an open execution (Temporal accepts a cancel of a closed
        one without a word, so a cancel alone cannot tell)."""
        try:
            found = await self.client.get_workflow_handle(workflow_id).describe()
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                return False
            raise DependencyUnavailable(
                f"Temporal did not describe the workflow: {error.message}"
            ) from None
        return found.status in (
            WorkflowExecutionStatus.RUNNING,
            WorkflowExecutionStatus.CONTINUED_AS_NEW,
        )

    async def cancel(self, workflow_id: str) -> None:
        """Asks the workflow to cancel; Temporal not answering is a 503, a workflow that is
        not open (ended, or never started) is `WorkflowGone`."""
        try:
            await self.client.get_workflow_handle(workflow_id).cancel()
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                raise WorkflowGone(f"workflow {workflow_id} is not open: {error.message}") from None
            raise DependencyUnavailable(
                f"Temporal did not accept the cancel: {error.message}"
            ) from None
