"""The job-run workflow against a real Temporal server, with http.request steps that reach
the loopback HTTP receiver: the semantics of docs/jobs.md, one at a time."""

import asyncio
from typing import Any

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError

from opsconductor.config import Settings
from opsconductor.contracts.runs import ApprovalDecision, RunStatus
from opsconductor.temporal.client import connect
from opsconductor.worker.registry import WorkerResources
from tests.engine_helpers import recorded_run, recorded_steps, start_run, web_targets
from tests.fixtures.http_receiver import HttpReceiver

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


def call(step_id: str, path: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "action": "http.request",
        "with": {
            "url": "{{ target.address }}" + path,
            "method": "POST",
            "json": {"t": "{{ target.name }}"},
        },
        **extra,
    }


@pytest.fixture
async def temporal(settings: Settings) -> Client:
    return await connect(settings)


async def test_each_target_runs_its_steps_in_order(
    temporal: Client, worker_resources: WorkerResources, http_receiver: HttpReceiver
) -> None:
    document = {
        "name": "two-steps",
        "steps": [call("first", "/first"), call("second", "/second", needs=["first"])],
    }
    handle = await start_run(
        temporal, worker_resources.sessionmaker, document, web_targets(http_receiver.url, 3)
    )
    summary = await handle.result()
    assert summary.status is RunStatus.succeeded
    assert sorted(summary.succeeded_targets) == ["web-1", "web-2", "web-3"]
    paths_by_target: dict[str, list[str]] = {}
    for request in http_receiver.requests:
        paths_by_target.setdefault(request.json["t"], []).append(request.path)
    assert paths_by_target == {name: ["/first", "/second"] for name in ("web-1", "web-2", "web-3")}

    steps = await recorded_steps(worker_resources.sessionmaker, summary.run_id)
    assert {key: row.status for key, row in steps.items()} == {
        (target, step): "succeeded"
        for target in ("web-1", "web-2", "web-3")
        for step in ("first", "second")
    }
    run = await recorded_run(worker_resources.sessionmaker, summary.run_id)
    assert run.status == "succeeded"
    assert run.started_at is not None
    assert run.finished_at is not None


async def test_a_failure_skips_dependants_and_runs_its_handler(
    temporal: Client, worker_resources: WorkerResources, http_receiver: HttpReceiver
) -> None:
    http_receiver.respond("/deploy-broken", status=500, json={"error": "nope"})
    document = {
        "name": "with-rollback",
        "steps": [
            {
                **call("deploy", "/deploy{{ '-broken' if target.name == 'web-2' else '' }}"),
                "retry": {"attempts": 2, "interval": "100ms"},
            },
            call("verify", "/verify", needs=["deploy"]),
            call(
                "rollback",
                "/rollback",
                needs=["verify"],
                when="{{ steps.verify.failed or steps.deploy.failed }}",
            ),
            {
                "id": "report",
                "run_once": True,
                "needs": ["rollback"],
                "when": "{{ true }}",
                "action": "http.request",
                "with": {
                    "url": http_receiver.url + "/report",
                    "method": "POST",
                    "json": {
                        "summary": "{{ run.summary }}",
                        "failed": "{{ run.failed_targets | join(',') }}",
                    },
                },
            },
        ],
    }
    handle = await start_run(
        temporal, worker_resources.sessionmaker, document, web_targets(http_receiver.url, 2)
    )
    summary = await handle.result()
    assert summary.status is RunStatus.failed
    assert summary.failed_targets == ["web-2"]

    steps = await recorded_steps(worker_resources.sessionmaker, summary.run_id)
    broken = steps[("web-2", "deploy")]
    assert broken.status == "failed"
    assert broken.attempts == 2
    assert "answered 500" in (broken.reason or "")
    assert '"nope"' in broken.stdout
    assert (steps[("web-2", "verify")].status, steps[("web-2", "verify")].reason) == (
        "skipped",
        "upstream_failed",
    )
    assert steps[("web-2", "rollback")].status == "succeeded"
    assert (steps[("web-1", "rollback")].status, steps[("web-1", "rollback")].reason) == (
        "skipped",
        "condition",
    )
    assert steps[("", "report")].status == "succeeded"
    report = next(request for request in http_receiver.requests if request.path == "/report")
    assert report.json == {
        "summary": "2 target(s): 1 succeeded, 1 failed (web-2)",
        "failed": "web-2",
    }


async def test_on_error_continue_and_max_failed_targets(
    temporal: Client, worker_resources: WorkerResources, http_receiver: HttpReceiver
) -> None:
    http_receiver.respond("/flaky", status=503)
    document = {
        "name": "tolerant",
        "strategy": {"concurrency": 1, "max_failed_targets": 0},
        "steps": [
            call("optional", "/flaky", on_error="continue"),
            call(
                "must", "/must{{ '-broken' if target.name == 'web-1' else '' }}", needs=["optional"]
            ),
        ],
    }
    http_receiver.respond("/must-broken", status=500)
    handle = await start_run(
        temporal, worker_resources.sessionmaker, document, web_targets(http_receiver.url, 3)
    )
    summary = await handle.result()
    steps = await recorded_steps(worker_resources.sessionmaker, summary.run_id)
    # The tolerated failure did not block `must`; web-1's real failure stopped new targets.
    assert steps[("web-1", "optional")].status == "failed"
    assert steps[("web-1", "must")].status == "failed"
    assert {steps[("web-2", step)].reason for step in ("optional", "must")} == {"run_aborted"}
    assert summary.status is RunStatus.failed
    assert summary.failed_targets == ["web-1"]


async def test_approval_approve_reject_and_refusal(
    temporal: Client, worker_resources: WorkerResources, http_receiver: HttpReceiver
) -> None:
    document = {
        "name": "gated",
        "steps": [
            {
                "id": "approve",
                "run_once": True,
                "action": "control.approval",
                "with": {
                    "message": "Go on {{ run.targets | length }} target(s)?",
                    "approvers": ["operator", "carol"],
                },
            },
            call("act", "/act", needs=["approve"]),
        ],
    }
    approved = await start_run(
        temporal, worker_resources.sessionmaker, document, web_targets(http_receiver.url, 1)
    )
    await _wait_for_approval(approved)
    with pytest.raises(WorkflowUpdateFailedError):
        await approved.execute_update(
            "decide-approval",
            ApprovalDecision(step="approve", approve=True, by="vic", role="viewer"),
        )
    answer = await approved.execute_update(
        "decide-approval",
        ApprovalDecision(step="approve", approve=True, by="olga", role="operator", comment="ok"),
        result_type=str,
    )
    assert answer == "approved"
    assert (await approved.result()).status is RunStatus.succeeded
    steps = await recorded_steps(worker_resources.sessionmaker, (await approved.result()).run_id)
    assert steps[("", "approve")].outputs == {"decision": "approved", "by": "olga", "comment": "ok"}

    rejected = await start_run(
        temporal, worker_resources.sessionmaker, document, web_targets(http_receiver.url, 1)
    )
    await _wait_for_approval(rejected)
    await rejected.execute_update(
        "decide-approval",
        ApprovalDecision(
            step="approve", approve=False, by="carol", role="viewer", comment="not today"
        ),
    )
    summary = await rejected.result()
    assert summary.status is RunStatus.failed
    steps = await recorded_steps(worker_resources.sessionmaker, summary.run_id)
    assert steps[("", "approve")].reason == "rejected by carol: not today"
    assert (steps[("web-1", "act")].status, steps[("web-1", "act")].reason) == (
        "skipped",
        "upstream_failed",
    )
    assert [request.path for request in http_receiver.requests] == ["/act"]


async def test_the_run_timeout_ends_the_run_and_completes_its_record(
    temporal: Client, worker_resources: WorkerResources, http_receiver: HttpReceiver
) -> None:
    document = {
        "name": "too-slow",
        "timeout": "1s",
        "steps": [
            {"id": "nap", "run_once": True, "action": "control.sleep", "with": {"duration": "1m"}},
            {
                "id": "after",
                "run_once": True,
                "needs": ["nap"],
                "action": "control.sleep",
                "with": {"duration": "1s"},
            },
        ],
    }
    summary = await (
        await start_run(temporal, worker_resources.sessionmaker, document, [])
    ).result()
    assert summary.status is RunStatus.failed
    assert summary.reason == "the run exceeded its timeout of 1s"
    steps = await recorded_steps(worker_resources.sessionmaker, summary.run_id)
    assert steps[("", "nap")].status == "cancelled"
    assert (steps[("", "after")].status, steps[("", "after")].reason) == ("skipped", "run_aborted")


async def _wait_for_approval(handle: Any) -> None:
    for _ in range(300):
        progress = await handle.query("progress")
        if progress["waiting_approval"]:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the run never waited for approval")


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("per-target", ["a web-1", "b web-1", "a web-2", "b web-2"]),
        ("per-step", ["a web-1", "a web-2", "b web-1", "b web-2"]),
    ],
)
async def test_orders_and_the_concurrency_limit(
    temporal: Client,
    worker_resources: WorkerResources,
    http_receiver: HttpReceiver,
    order: str,
    expected: list[str],
) -> None:
    document = {
        "name": f"order-{order}",
        "strategy": {"order": order, "concurrency": "{{ params.batch }}"},
        "parameters": {"batch": {"type": "integer", "default": 1}},
        "steps": [call("a", "/a"), call("b", "/b", needs=["a"])],
    }
    handle = await start_run(
        temporal,
        worker_resources.sessionmaker,
        document,
        web_targets(http_receiver.url, 2),
        {"batch": 1},
    )
    assert (await handle.result()).status is RunStatus.succeeded
    seen = [f"{request.path.strip('/')} {request.json['t']}" for request in http_receiver.requests]
    assert seen == expected
