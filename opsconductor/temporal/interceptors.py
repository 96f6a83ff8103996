"""The request id of the API call that started a workflow, carried into the workflow's and its
activities' log lines.

The client puts the current request id (logging.request_id_var, set by the API's middleware)
into a header of the workflow it starts; the workflow passes it on in the header of every
activity it schedules; the worker sets request_id_var around the workflow and each activity,
so every log line they write names it. Headers go through our payload codec like every other
payload (temporal/client.py sets HeaderCodecBehavior.CODEC), so history shows them sealed.

One interceptor class does all of it: registered on the client, the SDK also uses it for every
worker built on that client.
"""

import logging
import time
from collections.abc import Mapping
from typing import Any

from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import Interceptor as ClientInterceptor
from temporalio.client import OutboundInterceptor, StartWorkflowInput, WorkflowHandle
from temporalio.converter import PayloadConverter
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    StartActivityInput,
    StartChildWorkflowInput,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)
from temporalio.worker import Interceptor as WorkerInterceptor

from opsconductor.logging import request_id_var

REQUEST_ID_HEADER = "opsconductor-request-id"

logger = logging.getLogger("opsconductor.activity")


def with_request_id(headers: Mapping[str, Payload], request_id: str | None) -> dict[str, Payload]:
    updated = dict(headers)
    if request_id:
        updated[REQUEST_ID_HEADER] = PayloadConverter.default.to_payload(request_id)
    return updated


def request_id_from(headers: Mapping[str, Payload]) -> str | None:
    """The header's request id; None when absent or unreadable (a log field never fails work)."""
    payload = headers.get(REQUEST_ID_HEADER)
    if payload is None:
        return None
    try:
        value = PayloadConverter.default.from_payload(payload, str)
    # E.g. a sealed header read by a process without the codec.
    except Exception:
        return None
    return value if isinstance(value, str) else None


class RequestIdInterceptor(ClientInterceptor, WorkerInterceptor):
    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _ClientOutbound(next)

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityInbound(next)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _WorkflowInbound


class _ClientOutbound(OutboundInterceptor):
    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        input.headers = with_request_id(input.headers, request_id_var.get())
        return await self.next.start_workflow(input)


class _WorkflowInbound(WorkflowInboundInterceptor):
    """One per workflow run: remembers the request id for the run's outbound calls."""

    request_id: str | None = None

    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_WorkflowOutbound(outbound, self))

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        self.request_id = request_id_from(input.headers)
        # Set in the workflow's own task (a copy of the worker's context), so the workflow's
        # log lines carry it; workflow.logger stays silent during replay.
        request_id_var.set(self.request_id)
        workflow.logger.info("workflow started")
        return await self.next.execute_workflow(input)


class _WorkflowOutbound(WorkflowOutboundInterceptor):
    def __init__(self, next: WorkflowOutboundInterceptor, inbound: _WorkflowInbound):
        super().__init__(next)
        self._inbound = inbound

    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        input.headers = with_request_id(input.headers, self._inbound.request_id)
        return self.next.start_activity(input)

    def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
        input.headers = with_request_id(input.headers, self._inbound.request_id)
        return self.next.start_local_activity(input)

    async def start_child_workflow(
        self, input: StartChildWorkflowInput
    ) -> workflow.ChildWorkflowHandle[Any, Any]:
        input.headers = with_request_id(input.headers, self._inbound.request_id)
        return await self.next.start_child_workflow(input)


class _ActivityInbound(ActivityInboundInterceptor):
    """Sets the request id around the activity and logs one line per attempt, like the API's
    access log: which activity, for which workflow, how it ended and how long it took."""

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        token = request_id_var.set(request_id_from(input.headers))
        info = activity.info()
        started = time.perf_counter()
        outcome = "failed"
        error_type: str | None = None
        try:
            result = await self.next.execute_activity(input)
            outcome = "completed"
            return result
        except BaseException as error:
            outcome = "cancelled" if activity.is_cancelled() else "failed"
            error_type = getattr(error, "type", None) or type(error).__name__
            raise
        finally:
            extra: dict[str, Any] = {
                "activity": info.activity_type,
                "workflow_id": info.workflow_id,
                "attempt": info.attempt,
                "outcome": outcome,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            }
            if outcome != "completed":
                # The type only: an error's message may quote what a remote command printed.
                extra["error_type"] = error_type
            logger.log(
                logging.INFO if outcome == "completed" else logging.WARNING,
                "activity %s %s",
                info.activity_type,
                outcome,
                extra=extra,
            )
            request_id_var.reset(token)
