"""Runs through the API: start, inspect, approve, cancel, follow — with real workers."""

import httpx
import pytest

from tests.fixtures.http_receiver import HttpReceiver
from tests.identity_helpers import Account, api, assert_problem, create_user
from tests.run_helpers import TERMINAL, create_job, notify_job, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


async def test_a_run_starts_records_its_steps_and_succeeds(
    http: httpx.AsyncClient, operator: Account, viewer: Account, http_receiver: HttpReceiver
) -> None:
    job_id = await create_job(http, operator, notify_job(http_receiver))
    started = await http.post(
        api(f"/jobs/{job_id}/runs"),
        json={"parameters": {"level": "warn"}},
        headers=operator.headers,
    )
    assert started.status_code == 202, started.text
    accepted = started.json()
    assert accepted["status"] == "queued"
    assert accepted["workflow_id"] == f"run-{accepted['id']}"

    run = await wait_for(http, viewer, accepted["id"], TERMINAL)
    assert run["status"] == "succeeded"
    assert run["job_version"] == 1
    assert run["parameters"] == {"level": "warn"}
    assert run["triggered_by"] == operator.username
    (step,) = run["steps"]
    assert step["id"] == "hook"
    assert step["status"] == "succeeded"
    assert step["outputs"]["status"] == 200
    assert http_receiver.requests[0].json == {"level": "warn", "run": accepted["id"]}

    listed = (
        await http.get(api("/runs"), params={"job_id": job_id}, headers=viewer.headers)
    ).json()
    assert [item["id"] for item in listed["items"]] == [accepted["id"]]
    by_status = (
        await http.get(api("/runs"), params={"status": "failed"}, headers=viewer.headers)
    ).json()
    assert by_status["total"] == 0


async def test_bad_parameters_are_refused_with_their_path(
    http: httpx.AsyncClient, operator: Account, http_receiver: HttpReceiver
) -> None:
    job_id = await create_job(http, operator, notify_job(http_receiver))
    answer = await http.post(
        api(f"/jobs/{job_id}/runs"),
        json={"parameters": {"level": "loud", "extra": 1}},
        headers=operator.headers,
    )
    problem = assert_problem(answer, 422)
    assert {error["path"] for error in problem["errors"]} == {
        "body.parameters.level",
        "body.parameters.extra",
    }
    assert (await http.get(api("/runs"), headers=operator.headers)).json()["total"] == 0


async def test_approvals_through_the_api(
    http: httpx.AsyncClient, admin: Account, operator: Account, viewer: Account
) -> None:
    document = {
        "name": "gated",
        "steps": [
            {
                "id": "gate",
                "run_once": True,
                "action": "control.approval",
                "with": {"message": "Proceed?", "approvers": ["admin"]},
            },
        ],
    }
    job_id = await create_job(http, operator, document)
    run_id = (
        await http.post(api(f"/jobs/{job_id}/runs"), json={}, headers=operator.headers)
    ).json()["id"]
    await wait_for(http, viewer, run_id, {"waiting_approval"})

    decision = {"step": "gate", "decision": "approve", "comment": "go"}
    assert_problem(
        await http.post(api(f"/runs/{run_id}/approvals"), json=decision, headers=viewer.headers),
        403,
    )
    refused = await http.post(
        api(f"/runs/{run_id}/approvals"), json=decision, headers=operator.headers
    )
    assert "may not decide" in assert_problem(refused, 403)["detail"]
    wrong_step = await http.post(
        api(f"/runs/{run_id}/approvals"), json={**decision, "step": "other"}, headers=admin.headers
    )
    assert_problem(wrong_step, 409)

    accepted = await http.post(
        api(f"/runs/{run_id}/approvals"), json=decision, headers=admin.headers
    )
    assert accepted.json() == {"step": "gate", "decision": "approved"}
    run = await wait_for(http, viewer, run_id, TERMINAL)
    assert run["status"] == "succeeded"
    assert run["steps"][0]["outputs"] == {"decision": "approved", "by": "admin", "comment": "go"}

    audit = (
        await http.get(api("/audit"), params={"action": "run.approve"}, headers=admin.headers)
    ).json()
    outcomes = sorted(item["outcome"] for item in audit["items"])
    assert outcomes == ["denied", "denied", "failure", "success"]


def gated_job(name: str, **approval: object) -> dict[str, object]:
    return {
        "name": name,
        "steps": [
            {
                "id": "gate",
                "run_once": True,
                "action": "control.approval",
                "with": {"message": "Proceed?", **approval},
            },
        ],
    }


async def waiting_run(
    http: httpx.AsyncClient, requester: Account, document: dict[str, object]
) -> str:
    job_id = await create_job(http, requester, document)
    started = await http.post(api(f"/jobs/{job_id}/runs"), json={}, headers=requester.headers)
    run_id: str = started.json()["id"]
    await wait_for(http, requester, run_id, {"waiting_approval"})
    return run_id


async def approve(http: httpx.AsyncClient, who: Account, run_id: str) -> httpx.Response:
    decision = {"step": "gate", "decision": "approve"}
    return await http.post(api(f"/runs/{run_id}/approvals"), json=decision, headers=who.headers)


async def test_the_requester_may_not_approve_their_own_run(
    http: httpx.AsyncClient, admin: Account, operator: Account
) -> None:
    run_id = await waiting_run(http, operator, gated_job("four-eyes"))

    refused = assert_problem(await approve(http, operator, run_id), 403)
    assert "requested this run and may not approve it" in refused["detail"]
    second = await create_user(http, admin.headers, "oscar", "operator")
    accepted = await approve(http, second, run_id)
    assert accepted.json() == {"step": "gate", "decision": "approved"}, accepted.text
    run = await wait_for(http, operator, run_id, TERMINAL)
    assert run["status"] == "succeeded"
    assert run["steps"][0]["outputs"]["by"] == "oscar"


async def test_allow_self_approval_lets_the_requester_approve(
    http: httpx.AsyncClient, operator: Account
) -> None:
    run_id = await waiting_run(http, operator, gated_job("self-ok", allow_self_approval=True))

    accepted = await approve(http, operator, run_id)
    assert accepted.json() == {"step": "gate", "decision": "approved"}, accepted.text
    assert (await wait_for(http, operator, run_id, TERMINAL))["status"] == "succeeded"


async def test_a_demoted_admin_no_longer_passes_an_admin_gate(
    http: httpx.AsyncClient, admin: Account, operator: Account
) -> None:
    # The bootstrap admin is the user named `admin`: once demoted, the `admin` in the approver
    # list must not match them by name.
    other_admin = await create_user(http, admin.headers, "ada", "admin")
    demoted = await http.patch(
        api(f"/users/{admin.id}"), json={"role": "operator"}, headers=other_admin.headers
    )
    assert demoted.status_code == 200, demoted.text
    run_id = await waiting_run(http, operator, gated_job("admins-only", approvers=["admin"]))

    assert "may not decide" in assert_problem(await approve(http, admin, run_id), 403)["detail"]
    accepted = await approve(http, other_admin, run_id)
    assert accepted.json() == {"step": "gate", "decision": "approved"}, accepted.text


async def test_cancel_stops_the_run_and_records_every_step(
    http: httpx.AsyncClient, operator: Account
) -> None:
    document = {
        "name": "long",
        "steps": [
            {
                "id": "wait",
                "run_once": True,
                "action": "control.sleep",
                "with": {"duration": "10m"},
            },
            {
                "id": "after",
                "run_once": True,
                "needs": ["wait"],
                "action": "control.sleep",
                "with": {"duration": "1s"},
            },
        ],
    }
    job_id = await create_job(http, operator, document)
    run_id = (
        await http.post(api(f"/jobs/{job_id}/runs"), json={}, headers=operator.headers)
    ).json()["id"]
    running = await wait_for(http, operator, run_id, {"running"})
    assert running["status"] == "running"
    answer = await http.post(api(f"/runs/{run_id}/cancel"), headers=operator.headers)
    assert answer.status_code == 202
    run = await wait_for(http, operator, run_id, TERMINAL)
    assert run["status"] == "cancelled"
    assert {step["id"]: step["status"] for step in run["steps"]} == {
        "wait": "cancelled",
        "after": "cancelled",
    }
    assert_problem(await http.post(api(f"/runs/{run_id}/cancel"), headers=operator.headers), 409)


async def test_following_the_log_of_a_finished_run_ends_the_stream(
    http: httpx.AsyncClient, operator: Account, http_receiver: HttpReceiver
) -> None:
    job_id = await create_job(http, operator, notify_job(http_receiver))
    run_id = (
        await http.post(api(f"/jobs/{job_id}/runs"), json={}, headers=operator.headers)
    ).json()["id"]
    await wait_for(http, operator, run_id, TERMINAL)
    async with http.stream(
        "GET", api(f"/runs/{run_id}/logs"), params={"follow": "true"}, headers=operator.headers
    ) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        body = (await stream.aread()).decode()
    assert 'event: end\ndata: {"status": "succeeded"}' in body


async def test_a_sub_job_runs_as_a_linked_child_run_whose_outputs_later_steps_read(
    http: httpx.AsyncClient, operator: Account, viewer: Account, http_receiver: HttpReceiver
) -> None:
    await create_job(http, operator, notify_job(http_receiver))
    parent_id = await create_job(
        http,
        operator,
        {
            "name": "parent",
            "steps": [
                {
                    "id": "sub",
                    "run_once": True,
                    "action": "job.run",
                    "with": {"job": "ping-hook", "parameters": {"level": "warn"}},
                },
                {
                    "id": "report",
                    "run_once": True,
                    "needs": ["sub"],
                    "action": "http.request",
                    "with": {
                        "url": http_receiver.url + "/report",
                        "method": "POST",
                        "json": {
                            "child": "{{ steps.sub.outputs.status }}",
                            "hook": "{{ steps.sub.outputs.outputs.hook.status }}",
                        },
                    },
                },
            ],
        },
    )
    started = await http.post(api(f"/jobs/{parent_id}/runs"), json={}, headers=operator.headers)
    parent = await wait_for(http, viewer, started.json()["id"], TERMINAL)
    assert parent["status"] == "succeeded", parent
    sub, report = parent["steps"]
    children = (
        await http.get(api("/runs"), params={"parent_run_id": parent["id"]}, headers=viewer.headers)
    ).json()["items"]
    assert [child["id"] for child in children] == [sub["outputs"]["run_id"]]
    (child,) = children
    assert (child["job_name"], child["status"], child["parent_run_id"]) == (
        "ping-hook",
        "succeeded",
        parent["id"],
    )
    assert child["triggered_by"] == f"run:{parent['id']}"
    assert [request.path for request in http_receiver.requests] == ["/hook", "/report"]
    assert http_receiver.requests[0].json["level"] == "warn"
    assert http_receiver.requests[1].json == {"child": "succeeded", "hook": "200"}
    assert report["status"] == "succeeded"


async def test_a_failed_sub_job_fails_its_step_and_a_bad_one_names_the_field(
    http: httpx.AsyncClient, operator: Account, viewer: Account, http_receiver: HttpReceiver
) -> None:
    await create_job(http, operator, notify_job(http_receiver))
    parent_id = await create_job(
        http,
        operator,
        {
            "name": "bad-parent",
            "steps": [
                {
                    "id": "sub",
                    "run_once": True,
                    "action": "job.run",
                    "with": {"job": "ping-hook", "parameters": {"level": "loud"}},
                },
                {
                    "id": "missing",
                    "run_once": True,
                    "on_error": "continue",
                    "action": "job.run",
                    "with": {"job": "no-such-job"},
                },
            ],
        },
    )
    started = await http.post(api(f"/jobs/{parent_id}/runs"), json={}, headers=operator.headers)
    parent = await wait_for(http, viewer, started.json()["id"], TERMINAL)
    assert parent["status"] == "failed"
    steps = {step["id"]: step for step in parent["steps"]}
    assert steps["sub"]["status"] == "failed"
    assert "with.parameters.level" in steps["sub"]["reason"]
    assert steps["missing"]["reason"] == "with.job: no job named 'no-such-job'"
    assert http_receiver.requests == []
