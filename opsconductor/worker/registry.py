"""What each task queue runs. A protocol's activities are registered on its own queue only."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.activities.child_runs import ChildRuns
from opsconductor.activities.connection_test import ConnectionTests
from opsconductor.activities.discovery import DiscoveryActions
from opsconductor.activities.http import HttpActions
from opsconductor.activities.http_chunks import HttpChunks
from opsconductor.activities.notify import DeliveryLog, NotifyActions
from opsconductor.activities.ping import ping
from opsconductor.activities.plugins import plugin_activities
from opsconductor.activities.run_records import RunRecorder
from opsconductor.activities.scheduled_runs import ScheduledRuns
from opsconductor.activities.ssh import SshActions
from opsconductor.activities.ssh_chunks import SshChunks
from opsconductor.activities.step_output import recording_output
from opsconductor.activities.winrm import WinrmActions
from opsconductor.config import Settings
from opsconductor.contracts.queues import TaskQueue
from opsconductor.security.envelope import KeyRing
from opsconductor.security.keys import load_process_keys
from opsconductor.services.sealing import keyring_from
from opsconductor.workflows.connection_test import ConnectionTestWorkflow
from opsconductor.workflows.discovery_scan import DiscoveryScanWorkflow
from opsconductor.workflows.job_run import JobRunWorkflow
from opsconductor.workflows.notifications import (
    ChannelTestWorkflow,
    DeliveryWorkflow,
    PasswordResetMailWorkflow,
)
from opsconductor.workflows.probe import FleetProbeWorkflow
from opsconductor.workflows.scheduled_run import ScheduledRunWorkflow
from opsconductor.workflows.target_batch import TargetBatchWorkflow

WORKFLOWS: Sequence[type] = (
    FleetProbeWorkflow,
    JobRunWorkflow,
    TargetBatchWorkflow,
    ConnectionTestWorkflow,
    ChannelTestWorkflow,
    DeliveryWorkflow,
    PasswordResetMailWorkflow,
    DiscoveryScanWorkflow,
    ScheduledRunWorkflow,
)


@dataclass(frozen=True)
class WorkerResources:
    """What activities share within one worker process."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]

    @cached_property
    def keyring(self) -> KeyRing:
        """The vault's key ring, built once per process (on first use) from the settings."""
        return keyring_from(load_process_keys(self.settings))


def activities_for(queue: TaskQueue, resources: WorkerResources) -> list[Callable[..., Any]]:
    # Every queue answers the probe, so `opsconductor check` can prove each one is served.
    activities: list[Callable[..., Any]] = [ping]
    # Step activities whose output is stored on the step's record, not carried in history.
    steps: list[Callable[..., Any]] = []
    if queue is TaskQueue.orchestration:
        recorder = RunRecorder(resources.sessionmaker)
        activities += [
            recorder.record_step,
            recorder.record_run_status,
            recorder.record_run,
            recorder.load_target_batch,
            recorder.close_run_steps,
            # job.run: the workflow reads its result (the child run to start); no output.
            ChildRuns(resources.sessionmaker, resources.settings).run_step,
            ScheduledRuns(resources.sessionmaker, resources.settings).create,
            DeliveryLog(resources.sessionmaker).record,
        ]
        activities.append(DiscoveryActions(resources.sessionmaker).record_status)
    elif queue is TaskQueue.ssh:
        steps.append(SshActions(resources.sessionmaker, resources.keyring).run_step)
        activities.append(ConnectionTests(resources.sessionmaker, resources.keyring).run_test)
        # ssh.command over a chunk of targets: it stores its targets' output itself.
        activities.append(SshChunks(resources.sessionmaker, resources.keyring).run_chunk)
    elif queue is TaskQueue.winrm:
        steps.append(WinrmActions(resources.sessionmaker, resources.keyring).run_step)
        tests = ConnectionTests(resources.sessionmaker, resources.keyring)
        activities.append(tests.run_winrm_test)
    elif queue is TaskQueue.http:
        http = HttpActions(resources.settings, resources.sessionmaker, resources.keyring)
        steps.append(http.run_step)
        # http.request over a chunk of targets, through the same client: it stores its
        # targets' output itself.
        activities.append(HttpChunks(resources.sessionmaker, http).run_chunk)
    elif queue is TaskQueue.notify:
        notify = NotifyActions(resources.settings, resources.sessionmaker, resources.keyring)
        activities += [notify.deliver, notify.send_password_reset]
        steps.append(notify.run_step)
    elif queue is TaskQueue.discovery:
        discovery = DiscoveryActions(resources.sessionmaker)
        activities.append(discovery.scan)
        steps.append(discovery.run_step)
    # Actions of installed plugins (the `opsconductor.actions` entry point) on their queue.
    steps += plugin_activities(queue)
    return activities + [recording_output(step, resources.sessionmaker) for step in steps]


def workflows_for(queue: TaskQueue) -> Sequence[type]:
    return WORKFLOWS if queue.runs_workflows else ()
