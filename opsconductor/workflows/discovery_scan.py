"""The discovery-scan workflow: runs `nmap-scan` on the `discovery` queue and records how the
scan ended.

The nmap activity stores progress and found hosts itself (a large scan's hosts would not fit in
workflow history); this workflow owns the scan's final status, so a scan that no worker picks
up, that fails, or that is cancelled still ends with the reason on record.
"""

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    TimeoutError,
    TimeoutType,
)
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from opsconductor.contracts.discovery import (
        DISCOVERY_SCAN_WORKFLOW,
        ScanRequest,
        ScanStatus,
        ScanStatusRecord,
        ScanSummary,
        nmap_scan,
        record_scan_status,
    )
    from opsconductor.contracts.queues import TaskQueue
    from opsconductor.workflows.records import write_record

# How long a scan may wait for a discovery worker before it fails with that reason.
WORKER_WAIT = timedelta(minutes=10)
SCAN_TIMEOUT = timedelta(hours=12)
# Short, because cancellation reaches an activity through its heartbeats: nmap is killed within
# a few seconds of a cancel.
HEARTBEAT_TIMEOUT = timedelta(seconds=10)
CANCELLED = "the scan was cancelled"


@workflow.defn(name=DISCOVERY_SCAN_WORKFLOW)
class DiscoveryScanWorkflow:
    def __init__(self) -> None:
        self._status = ScanStatus.queued

    @workflow.query(name="progress")
    def progress(self) -> str:
        """The workflow's view; nmap's own progress (task, percent) is on the scan record."""
        return self._status.value

    @workflow.run
    async def run(self, request: ScanRequest) -> ScanSummary | None:
        self._status = ScanStatus.running
        try:
            summary: ScanSummary = await workflow.execute_activity(
                nmap_scan,
                request,
                task_queue=TaskQueue.discovery.value,
                schedule_to_start_timeout=WORKER_WAIT,
                start_to_close_timeout=SCAN_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                # A cancel waits until the worker has killed nmap, so "cancelled" means gone.
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                # A worker lost mid-scan is retried elsewhere; nmap's own errors are not.
                retry_policy=RetryPolicy(maximum_attempts=3),
            )
        except (asyncio.CancelledError, CancelledError):
            await self._record(request, ScanStatus.cancelled, CANCELLED)
            raise
        except ActivityError as error:
            if isinstance(error.cause, CancelledError):
                await self._record(request, ScanStatus.cancelled, CANCELLED)
                raise
            await self._record(request, ScanStatus.failed, _reason(error))
            return None
        await self._record(request, ScanStatus.succeeded, None, summary.notes)
        return summary

    async def _record(
        self,
        request: ScanRequest,
        status: ScanStatus,
        reason: str | None,
        notes: list[str] | None = None,
    ) -> None:
        self._status = status
        await write_record(
            record_scan_status,
            ScanStatusRecord(
                scan_id=request.scan_id, status=status, reason=reason, notes=notes or []
            ),
            f"the scan's status ({status.value})",
        )


def _reason(error: ActivityError) -> str:
    cause = error.cause
    if isinstance(cause, TimeoutError) and cause.type is TimeoutType.SCHEDULE_TO_START:
        return f"no discovery worker took the scan within {WORKER_WAIT}"
    if isinstance(cause, TimeoutError):
        return f"the scan timed out ({cause.type.name.lower() if cause.type else 'timeout'})"
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause or error)
