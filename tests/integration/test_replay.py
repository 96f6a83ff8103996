"""Workflow histories replayed with the current workflow code.

A change that makes a workflow decide differently on replay would strand every workflow in
flight at upgrade time. The histories in tests/histories/ were recorded from real runs against
the real services (with a fixed test key, so their encrypted payloads stay readable); each must
replay without a non-determinism error. They cover every workflow type and the paths that
matter: batches and failures, approval, retry, cancel, run timeout, `job.run` children, a
scheduled run, a discovery scan, a connection test, a channel test and the fleet probe. Fresh
runs of the same scenarios are replayed too, and with OPSCONDUCTOR_RECORD_HISTORIES=1 they
replace the recorded ones (do that only on purpose: docs/engine.md, "Changing workflow code").
"""

import asyncio
import base64
import functools
import json
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.common import HeaderCodecBehavior
from temporalio.worker import Interceptor, Replayer

from opsconductor.cli.check import probe_queues
from opsconductor.config import Settings
from opsconductor.contracts.runs import ApprovalDecision, RunStatus
from opsconductor.security.keys import load_process_keys
from opsconductor.temporal.client import connect, data_converter, interceptors
from opsconductor.temporal.codec import ENCODING, codec_key_id, payloads_in, sealing_key_ids
from opsconductor.worker.main import WORKFLOW_RUNNER
from opsconductor.worker.registry import WORKFLOWS, WorkerResources
from tests.engine_helpers import recorded_run, recorded_steps, start_run, web_targets
from tests.fixtures.http_receiver import HttpReceiver
from tests.fixtures.sshd import LoopbackSshd
from tests.identity_helpers import Account, api
from tests.run_helpers import (
    TERMINAL,
    create_job,
    notify_job,
    post,
    run_on_target,
    start_job_run,
    target_steps,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]

HISTORIES = Path(__file__).parents[1] / "histories"
# Not a secret: it only encrypts the payloads of the recorded test histories.
HISTORY_KEY = base64.b64encode(b"opsconductor-test-histories-key!").decode()


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"master_key": HISTORY_KEY}


def replayer(settings: Settings) -> Replayer:
    return Replayer(
        workflows=WORKFLOWS,
        data_converter=data_converter(load_process_keys(settings)),
        workflow_runner=WORKFLOW_RUNNER,
        # As the workers run them: the same interceptors, headers through the codec.
        interceptors=[item for item in interceptors(settings) if isinstance(item, Interceptor)],
        header_codec_behavior=HeaderCodecBehavior.CODEC,
    )


async def each(histories: list[WorkflowHistory]) -> AsyncIterator[WorkflowHistory]:
    for history in histories:
        yield history


def call(step_id: str, path: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "action": "http.request",
        "with": {"url": "{{ target.address }}" + path, "method": "POST"},
        **extra,
    }


ENGINE_SCENARIOS: dict[str, dict[str, Any]] = {
    "batches-failure-and-summary": {
        "name": "replay-batches",
        "steps": [
            {**call("deploy", "/deploy-{{ target.name }}"), "retry": {"attempts": 2}},
            call("verify", "/verify", needs=["deploy"], when="{{ not steps.deploy.failed }}"),
            {
                "id": "report",
                "run_once": True,
                "needs": ["verify"],
                "when": "{{ true }}",
                "action": "control.sleep",
                "with": {"duration": "{{ '10ms' if steps.deploy.failed else '20ms' }}"},
            },
        ],
    },
    "approval-then-targets": {
        "name": "replay-approval",
        "steps": [
            {
                "id": "approve",
                "run_once": True,
                "action": "control.approval",
                "with": {"message": "go?"},
            },
            call("act", "/act", needs=["approve"]),
        ],
    },
}


@dataclass(frozen=True, slots=True)
class Stage:
    """The real services a scenario drives: the engine directly, or the API."""

    settings: Settings
    client: Client
    resources: WorkerResources
    receiver: HttpReceiver
    http: httpx.AsyncClient
    operator: Account
    admin: Account
    loopback: str
    sshd: LoopbackSshd


async def run_engine_scenario(stage: Stage, name: str, batch_size: int = 2) -> None:
    stage.receiver.respond("/deploy-web-3", status=500)
    handle = await start_run(
        stage.client,
        stage.resources.sessionmaker,
        ENGINE_SCENARIOS[name],
        web_targets(stage.receiver.url, 3),
        batch_size=batch_size,
    )
    if name == "approval-then-targets":
        for _ in range(300):
            if (await handle.query("progress"))["waiting_approval"]:
                break
            await asyncio.sleep(0.1)
        await handle.execute_update(
            "decide-approval",
            ApprovalDecision(step="approve", approve=True, by="olga", role="operator"),
        )
    summary = await handle.result()
    assert summary.status in (RunStatus.succeeded, RunStatus.failed)


CONTINUED_JOB: dict[str, Any] = {
    "name": "replay-continued",
    "steps": [
        call("deploy", "/deploy-{{ target.name }}"),
        {"id": "pause", "run_once": True, "action": "control.sleep", "with": {"duration": "10ms"}},
        # After the run-once step: a segment of its own, which the run reaches continued.
        call("verify", "/verify", needs=["pause", "deploy"], when="{{ not steps.deploy.failed }}"),
    ],
}


async def continued_run(stage: Stage) -> None:
    """Six batches of one target, two per history: the run continues as new twice (docs/
    engine.md, "Scale: the parent continues as new"), and its records end as one run's would."""
    stage.receiver.respond("/deploy-web-3", status=500)
    handle = await start_run(
        stage.client,
        stage.resources.sessionmaker,
        CONTINUED_JOB,
        web_targets(stage.receiver.url, 3),
        batch_size=1,
        max_batches_per_history=2,
    )
    summary = await handle.result()
    assert (summary.status, summary.failed_targets) == (RunStatus.failed, ["web-3"])
    steps = await recorded_steps(stage.resources.sessionmaker, summary.run_id)
    assert {key: row.status for key, row in steps.items()} == {
        **{(f"web-{n}", step): "succeeded" for n in (1, 2) for step in ("deploy", "verify")},
        ("web-3", "deploy"): "failed",
        ("web-3", "verify"): "skipped",
        ("", "pause"): "succeeded",
    }
    # The failure from before the continuations still keeps web-3 out of the later segment.
    assert steps[("web-3", "verify")].reason == "upstream_failed"
    assert "500" in (steps[("web-3", "deploy")].reason or "")
    assert (await recorded_run(stage.resources.sessionmaker, summary.run_id)).status == "failed"


async def retried_step(stage: Stage) -> None:
    marker = Path(f"/tmp/opsc-replay-retry-{uuid.uuid4().hex}")
    step = {
        "id": "flaky",
        "action": "ssh.command",
        # Fails the first time (leaving the marker), succeeds the second.
        "with": {"command": f"if [ -e {marker} ]; then echo ok; else touch {marker}; exit 3; fi"},
        "retry": {"attempts": 2, "interval": "100ms"},
    }
    run = await run_on_target(stage.http, stage.operator, stage.loopback, step)
    marker.unlink(missing_ok=True)
    assert (run["status"], target_steps(run)["flaky"]["attempts"]) == ("succeeded", 2)


def slow_job(**extra: Any) -> dict[str, Any]:
    return {
        "name": f"replay-slow-{uuid.uuid4().hex[:8]}",
        "targets": {"names": ["loopback"]},
        "steps": [
            {"id": "slow", "action": "ssh.command", "with": {"command": "echo started; sleep 60"}}
        ],
        **extra,
    }


async def cancelled_run(stage: Stage) -> None:
    run_id = await start_job_run(stage.http, stage.operator, slow_job())
    await wait_for(stage.http, stage.operator, run_id, {"running"})
    for _ in range(300):
        if (await stage.http.get(api(f"/runs/{run_id}/log"), headers=stage.operator.headers)).text:
            break
        await asyncio.sleep(0.1)
    answer = await stage.http.post(api(f"/runs/{run_id}/cancel"), headers=stage.operator.headers)
    assert answer.status_code == 202, answer.text
    run = await wait_for(stage.http, stage.operator, run_id, TERMINAL)
    assert run["status"] == "cancelled"


async def run_timeout(stage: Stage) -> None:
    run_id = await start_job_run(stage.http, stage.operator, slow_job(timeout="2s"))
    run = await wait_for(stage.http, stage.operator, run_id, TERMINAL)
    assert run["status"] == "failed"


async def child_run(stage: Stage) -> None:
    await create_job(stage.http, stage.operator, notify_job(stage.receiver))
    parent = {
        "name": "replay-parent",
        "steps": [
            {
                "id": "sub",
                "run_once": True,
                "action": "job.run",
                "with": {"job": "ping-hook", "parameters": {"level": "warn"}},
            }
        ],
    }
    run_id = await start_job_run(stage.http, stage.operator, parent)
    run = await wait_for(stage.http, stage.operator, run_id, TERMINAL)
    assert run["status"] == "succeeded"


async def scheduled_run(stage: Stage) -> None:
    job_id = await create_job(stage.http, stage.operator, notify_job(stage.receiver))
    schedule = await post(
        stage.http,
        stage.operator,
        "/schedules",
        {"job_id": job_id, "name": "replay-nightly", "cron": "0 0 1 1 *"},
    )
    try:
        answer = await stage.http.post(
            api(f"/schedules/{schedule['id']}/trigger"), headers=stage.operator.headers
        )
        assert answer.status_code == 202, answer.text
        for _ in range(300):
            runs = await stage.http.get(
                api(f"/runs?job_id={job_id}"), headers=stage.operator.headers
            )
            if runs.json()["items"]:
                break
            await asyncio.sleep(0.1)
        (listed,) = runs.json()["items"]
        run = await wait_for(stage.http, stage.operator, listed["id"], TERMINAL)
        assert run["triggered_by"] == "schedule:replay-nightly"
    finally:
        deleted = await stage.http.delete(
            api(f"/schedules/{schedule['id']}"), headers=stage.operator.headers
        )
        assert deleted.status_code == 204, deleted.text


async def discovery_scan(stage: Stage) -> None:
    scan = await post(
        stage.http,
        stage.operator,
        "/discovery/scans",
        {
            "name": "replay",
            "hosts": "127.0.0.1",
            "ports": str(stage.sshd.port),
            "timing": "T4",
            "service_detection": False,
        },
    )
    for _ in range(600):
        answer = await stage.http.get(
            api(f"/discovery/scans/{scan['id']}"), headers=stage.operator.headers
        )
        if answer.json()["status"] in TERMINAL:
            break
        await asyncio.sleep(0.1)
    assert answer.json()["status"] == "succeeded", answer.text


async def connection_test(stage: Stage) -> None:
    targets = await stage.http.get(api("/targets"), headers=stage.operator.headers)
    (target,) = [item for item in targets.json()["items"] if item["name"] == stage.loopback]
    answer = await stage.http.post(
        api(f"/targets/{target['id']}/test"), headers=stage.operator.headers
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["ok"] is True, answer.text


async def channel_test(stage: Stage) -> None:
    # The password is sealed in the vault; the history must carry only the channel's id.
    url = f"json://hook:{secrets.token_urlsafe(12)}@127.0.0.1:{stage.receiver.port}/channel"
    channel = await post(
        stage.http, stage.admin, "/notification-channels", {"name": "hook", "url": url}
    )
    answer = await stage.http.post(
        api(f"/notification-channels/{channel['id']}/test"), headers=stage.admin.headers
    )
    assert answer.status_code == 200, answer.text


async def fleet_probe(stage: Stage) -> None:
    report = await probe_queues(stage.settings, wait_seconds=5)
    assert report.answers


SCENARIOS: dict[str, Callable[[Stage], Awaitable[None]]] = {
    **{name: functools.partial(run_engine_scenario, name=name) for name in ENGINE_SCENARIOS},
    "continued-run": continued_run,
    "retried-step": retried_step,
    # The same run since `workflow.patched("chunked-steps")`: the retry inside a chunk activity
    # (docs/engine.md "Scale: chunked steps"); retried-step's recordings keep the old path.
    "chunked-retried-step": retried_step,
    # batches-failure-and-summary since `workflow.patched("chunked-http-steps")`: its
    # http.request steps as chunk activities; the older recordings keep one per target.
    "chunked-http-batches": functools.partial(
        run_engine_scenario, name="batches-failure-and-summary"
    ),
    # batches-failure-and-summary with the patch bundle (workflows/patches.py): one marker in
    # each of its histories for every patch before it; the older recordings ask each patch.
    "bundled-batches": functools.partial(run_engine_scenario, name="batches-failure-and-summary"),
    # batches-failure-and-summary with its three targets in one batch, and a cancelled run of one
    # target, since `patch-bundle-2`: the batch runs in the run's own workflow, no child
    # (docs/engine.md "Scale: target batches"); the older recordings run it as a child.
    "one-batch-inline": functools.partial(
        run_engine_scenario, name="batches-failure-and-summary", batch_size=3
    ),
    "one-batch-cancelled": cancelled_run,
    "cancelled-run": cancelled_run,
    "run-timeout": run_timeout,
    "job-run-child": child_run,
    "scheduled-run": scheduled_run,
    "discovery-scan": discovery_scan,
    "connection-test": connection_test,
    "channel-test": channel_test,
    "fleet-probe": fleet_probe,
}


async def closed_since(client: Client, since: datetime) -> list[WorkflowHistory]:
    """Every workflow run started since `since`, once all of them have closed: the scenario's
    (each run of a workflow that continued as new is a history of its own)."""
    started = f'StartTime >= "{since.isoformat()}"'
    for _ in range(300):
        still_open = await client.count_workflows(f'{started} AND ExecutionStatus="Running"')
        listed = client.list_workflows(started)
        runs = sorted([(item.id, item.start_time, item.run_id) async for item in listed])
        if runs and still_open.count == 0:
            return [
                await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
                for workflow_id, _, run_id in runs
            ]
        await asyncio.sleep(0.1)
    raise AssertionError(f"workflows started since {since} stayed open")


async def test_recorded_histories_replay_with_the_current_code(settings: Settings) -> None:
    files = sorted(HISTORIES.glob("*.json"))
    assert files, f"no recorded histories in {HISTORIES}"
    recorded = [json.loads(path.read_text()) for path in files]
    # Child workflow ids derive from the parent's: replay needs the original ids.
    histories = [
        WorkflowHistory.from_json(item["workflow_id"], item["history"]) for item in recorded
    ]
    results = await replayer(settings).replay_workflows(
        each(histories), raise_on_replay_failure=False
    )
    failures = {workflow_id: str(error) for workflow_id, error in results.replay_failures.items()}
    assert failures == {}


# What the SDK writes in clear into a local activity's marker (its result is sealed).
LOCAL_ACTIVITY_MARKER_KEYS = {
    "seq",
    "attempt",
    "activity_id",
    "activity_type",
    "complete_time",
    "backoff",
    "original_schedule_time",
    "activation_index",
}
# What it writes in clear into a patch marker (`workflow.patched`): the patch id, a name of ours
# in the code, never data.
PATCH_MARKER_KEYS = {"id", "deprecated"}


def test_recorded_histories_hold_only_payloads_sealed_with_the_test_key() -> None:
    """No secret (nor anything else of ours) is in clear in the committed files: every payload
    is sealed with the fixed test key, except the search attributes Temporal indexes (ids and
    names) and the SDK's own bookkeeping in local-activity and patch markers."""
    test_key = codec_key_id(base64.b64decode(HISTORY_KEY))
    for path in sorted(HISTORIES.glob("*.json")):
        recorded = json.loads(path.read_text())
        history = WorkflowHistory.from_json(recorded["workflow_id"], recorded["history"])
        for event in history.events:
            assert sealing_key_ids(event) <= {test_key}, path.name
            for field, payload in payloads_in(event):
                if payload.metadata.get("encoding") == ENCODING or field == "indexed_fields":
                    continue
                assert event.HasField("marker_recorded_event_attributes"), (path.name, field)
                patch = event.marker_recorded_event_attributes.marker_name == "core_patch"
                allowed = PATCH_MARKER_KEYS if patch else LOCAL_ACTIVITY_MARKER_KEYS
                assert set(json.loads(payload.data)) <= allowed, path.name


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_fresh_runs_replay_deterministically(
    settings: Settings,
    worker_resources: WorkerResources,
    http_receiver: HttpReceiver,
    http: httpx.AsyncClient,
    operator: Account,
    admin: Account,
    loopback: str,
    sshd: LoopbackSshd,
    name: str,
) -> None:
    client = await connect(settings)
    stage = Stage(
        settings, client, worker_resources, http_receiver, http, operator, admin, loopback, sshd
    )
    since = datetime.now(UTC)
    await SCENARIOS[name](stage)
    histories = await closed_since(client, since)
    await replayer(settings).replay_workflows(each(histories))
    if os.environ.get("OPSCONDUCTOR_RECORD_HISTORIES") == "1":
        HISTORIES.mkdir(exist_ok=True)
        for stale in HISTORIES.glob(f"{name}-*.json"):
            stale.unlink()
        for index, history in enumerate(histories):
            recorded = {"workflow_id": history.workflow_id, "history": history.to_json_dict()}
            (HISTORIES / f"{name}-{index}.json").write_text(json.dumps(recorded))
