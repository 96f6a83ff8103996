"""Credential use grants through the real API and workers (docs/security.md): an operator may
use only the credentials granted to them, checked when a job is saved, a target is pointed at
a credential, a run starts and on the worker before decryption; the loopback HTTP receiver
shows what left. And the derived forms of a secret masked on the run record and log."""

import base64
import json
import re
from typing import Any

import httpx
import pytest

from opsconductor.activities.steps import MASK
from tests.fixtures.http_receiver import HttpReceiver
from tests.identity_helpers import Account, api, assert_problem, execute_sql
from tests.integration.test_schedules import NEVER_SOON, create_schedule, wait_for_runs
from tests.run_helpers import TERMINAL, post, wait_for
from tests.vault_helpers import grant, planted_secret, post_ok

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]

PASSWORD = "basic-pass-4711"


async def basic_credential(http: httpx.AsyncClient, admin: Account) -> str:
    credential = await post_ok(
        http,
        "/credentials",
        admin.headers,
        {
            "name": "svc-basic",
            "kind": "http_basic",
            "username": "deploy",
            "secret": {"password": PASSWORD},
        },
    )
    credential_id: str = credential["id"]
    return credential_id


async def ssh_login_credential(http: httpx.AsyncClient, admin: Account) -> dict[str, Any]:
    body = {"name": "root-pw", "kind": "ssh_password", "username": "root"}
    return await post_ok(
        http, "/credentials", admin.headers, body | {"secret": {"password": "x" * 12}}
    )


def calling_job(receiver: HttpReceiver, name: str = "call-service") -> dict[str, Any]:
    return {
        "name": name,
        "steps": [
            {
                "id": "call",
                "run_once": True,
                "action": "http.request",
                "with": {"url": receiver.url + "/call", "credential": "svc-basic"},
            },
            {
                "id": "keyed",
                "run_once": True,
                "action": "http.request",
                "with": {
                    "url": receiver.url + "/keyed",
                    "headers": {"X-Api-Key": "{{ secret('api-key') }}"},
                },
            },
        ],
    }


def error_paths(problem: dict[str, Any]) -> list[str]:
    return [item["path"] for item in problem["errors"]]


async def test_an_ungranted_credential_is_refused_at_save_and_on_a_target(
    http: httpx.AsyncClient, admin: Account, operator: Account, http_receiver: HttpReceiver
) -> None:
    await basic_credential(http, admin)
    await planted_secret(http, admin.headers, "api-key")
    ssh_login = await ssh_login_credential(http, admin)
    document = calling_job(http_receiver)

    checked = await http.post(api("/jobs/validate"), headers=operator.headers, json=document)
    assert checked.status_code == 200
    assert checked.json()["valid"] is False
    assert [item["path"] for item in checked.json()["errors"]] == [
        "steps.0.with.credential",
        "steps.1.with.headers.X-Api-Key",
    ]
    saved = assert_problem(
        await http.post(api("/jobs"), headers=operator.headers, json=document), 403
    )
    assert error_paths(saved) == [
        "body.steps.0.with.credential",
        "body.steps.1.with.headers.X-Api-Key",
    ]
    assert saved["errors"][0]["message"] == "credential 'svc-basic' is not granted to olivia"

    # A name no static check can follow is refused to non-admins.
    indirect = {
        "name": "indirect",
        "parameters": {"which": {"type": "string"}},
        "steps": [
            {
                "id": "leak",
                "run_once": True,
                "action": "http.request",
                "with": {"url": http_receiver.url + "/x", "body": "{{ secret(params.which) }}"},
            }
        ],
    }
    refused = assert_problem(
        await http.post(api("/jobs"), headers=operator.headers, json=indirect), 403
    )
    assert error_paths(refused) == ["body.steps.0.with.body"]

    target = {
        "name": "theirs",
        "address": "127.0.0.1",
        "protocol": "ssh",
        "credential_id": ssh_login["id"],
    }
    pointed = assert_problem(
        await http.post(api("/targets"), headers=operator.headers, json=target), 403
    )
    assert error_paths(pointed) == ["body.credential_id"]
    mine = await post(http, operator, "/targets", {**target, "credential_id": None})
    moved = await http.patch(
        api(f"/targets/{mine['id']}"),
        headers=operator.headers,
        json={"credential_id": ssh_login["id"]},
    )
    assert error_paths(assert_problem(moved, 403)) == ["body.credential_id"]
    # The job was never saved, so nothing ran: the secret never left.
    assert http_receiver.requests == []
    # Admins use every credential without a grant.
    as_admin = await http.post(api("/jobs"), headers=admin.headers, json=document)
    assert as_admin.status_code == 201, as_admin.text


async def test_a_granted_credential_works_end_to_end_and_a_revoked_one_stops_the_next_run(
    http: httpx.AsyncClient, admin: Account, operator: Account, http_receiver: HttpReceiver
) -> None:
    credential_id = await basic_credential(http, admin)
    api_key = await planted_secret(http, admin.headers, "api-key", granted_to=["operator"])
    await grant(http, admin.headers, credential_id, users=[operator.id])

    job = await post(http, operator, "/jobs", calling_job(http_receiver))
    run = await post(http, operator, f"/jobs/{job['id']}/runs", {})
    finished = await wait_for(http, operator, run["id"], TERMINAL)
    assert finished["status"] == "succeeded", finished
    seen = {
        item.path: {k.lower(): v for k, v in item.headers.items()}
        for item in http_receiver.requests
    }
    assert (
        seen["/call"]["authorization"]
        == "Basic " + base64.b64encode(f"deploy:{PASSWORD}".encode()).decode()
    )
    assert seen["/keyed"]["x-api-key"] == api_key

    listed = (await http.get(api(f"/credentials/{credential_id}"), headers=operator.headers)).json()
    assert listed["grants"] == {"users": [{"id": operator.id, "username": "olivia"}], "roles": []}
    audit = (
        await http.get(
            api("/audit"), headers=admin.headers, params={"action": "credential.grants.update"}
        )
    ).json()
    (granted,) = [item for item in audit["items"] if item["resource_id"] == credential_id]
    assert (granted["actor_username"], granted["detail"]["users"]) == ("admin", ["olivia"])

    await grant(http, admin.headers, credential_id)  # revoked: no grants left
    http_receiver.reset()
    refused = assert_problem(
        await http.post(api(f"/jobs/{job['id']}/runs"), headers=operator.headers, json={}), 403
    )
    assert error_paths(refused) == ["job.steps.0.with.credential"]
    assert "'svc-basic'" in refused["errors"][0]["message"]
    assert http_receiver.requests == []


async def test_the_worker_refuses_a_run_whose_requester_lost_the_grant_before_the_step(
    http: httpx.AsyncClient,
    admin: Account,
    operator: Account,
    http_receiver: HttpReceiver,
    database_url: str,
) -> None:
    credential_id = await basic_credential(http, admin)
    await grant(http, admin.headers, credential_id, roles=["operator"])
    document = {
        "name": "slow-call",
        "steps": [
            {"id": "wait", "run_once": True, "action": "control.sleep", "with": {"duration": "3s"}},
            {
                "id": "call",
                "run_once": True,
                "needs": ["wait"],
                "action": "http.request",
                "with": {"url": http_receiver.url + "/call", "credential": "svc-basic"},
            },
        ],
    }
    job = await post(http, operator, "/jobs", document)
    run = await post(http, operator, f"/jobs/{job['id']}/runs", {})
    # Revoked behind the API's back while the run sleeps: only the worker's check remains.
    await execute_sql(
        database_url, "DELETE FROM credential_grants WHERE credential_id = :id", id=credential_id
    )
    finished = await wait_for(http, operator, run["id"], TERMINAL)
    assert finished["status"] == "failed"
    call = next(step for step in finished["steps"] if step["id"] == "call")
    assert call["status"] == "failed"
    assert "credential 'svc-basic' is not granted to olivia" in call["reason"]
    assert http_receiver.requests == []
    access = (
        await http.get(api(f"/credentials/{credential_id}/access"), headers=admin.headers)
    ).json()
    assert [(row["outcome"], row["requester"], row["step_id"]) for row in access["items"]] == [
        ("refused", "olivia", "call")
    ]


async def test_derived_forms_of_secrets_are_masked_on_the_record_and_the_log(
    http: httpx.AsyncClient,
    admin: Account,
    operator: Account,
    http_receiver: HttpReceiver,
    loopback: str,
) -> None:
    credential_id = await basic_credential(http, admin)
    multi_line = "first-line-of-it\nsecond-line-too\nthird-line-here"
    multi = await post_ok(
        http,
        "/credentials",
        admin.headers,
        {"name": "ml", "kind": "secret", "secret": {"value": multi_line}},
    )
    for granted in (credential_id, multi["id"]):
        await grant(http, admin.headers, granted, users=[operator.id])
    basic_header = "Basic " + base64.b64encode(f"deploy:{PASSWORD}".encode()).decode()
    forms = {
        "basic header": basic_header.removeprefix("Basic "),
        "base64": base64.b64encode(PASSWORD.encode()).decode(),
        "hex": PASSWORD.encode().hex(),
        "base64 of the multi-line secret": base64.b64encode(multi_line.encode()).decode(),
        "hex of the multi-line secret": multi_line.encode().hex(),
        **{f"line {number}": line for number, line in enumerate(multi_line.split("\n"))},
    }
    # A service that echoes what it was sent, encoded, and the secret's lines in another order.
    http_receiver.respond(
        "/echo",
        body="\n".join([f"auth={basic_header}", *forms.values()][::-1]),
    )
    document = {
        "name": "echoes",
        "targets": {"names": [loopback]},
        "steps": [
            {
                "id": "echo",
                "run_once": True,
                "action": "http.request",
                "with": {
                    "url": http_receiver.url + "/echo",
                    "credential": "svc-basic",
                    "json": {"value": "{{ secret('ml') }}"},
                },
            },
            {
                "id": "encode",
                "action": "ssh.command",
                "with": {
                    "env": {"S": "{{ secret('ml') }}"},
                    "command": 'printf %s "$S" | base64 -w0; echo; '
                    "printf %s \"$S\" | od -An -tx1 | tr -d ' \\n'; echo; "
                    "printf '%s\\n' \"$S\" | tac",
                },
            },
        ],
    }
    job = await post(http, operator, "/jobs", document)
    run = await post(http, operator, f"/jobs/{job['id']}/runs", {})
    finished = await wait_for(http, operator, run["id"], TERMINAL)
    assert finished["status"] == "succeeded", finished
    (request,) = http_receiver.requests
    assert json.loads(request.body)["value"] == multi_line  # the service got the real secret
    logs = (await http.get(api(f"/runs/{run['id']}/logs"), headers=operator.headers)).json()
    recorded = json.dumps(finished) + json.dumps(logs)
    for name, form in forms.items():
        assert form not in recorded, name
    assert recorded.count(MASK) >= len(forms)


async def test_the_console_credential_list_shows_who_may_use_each(
    served: httpx.AsyncClient, http: httpx.AsyncClient, admin: Account, operator: Account
) -> None:
    credential_id = await basic_credential(http, admin)
    await planted_secret(http, admin.headers, "api-key")
    await grant(http, admin.headers, credential_id, users=[operator.id], roles=["viewer"])
    signed = await served.post(
        "/login", data={"username": operator.username, "password": operator.password}
    )
    assert signed.status_code == 303
    page = await served.get("/lists/credentials")
    assert page.status_code == 200
    # Each row's cells as text (a credential's name links to its page).
    rows = {
        cells[0]: cells
        for cells in (
            [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td>(.*?)</td>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", page.text, flags=re.S)
        )
        if cells
    }
    assert "user:olivia, role:viewer" in rows["svc-basic"]
    assert "admins only" in rows["api-key"]


async def test_scheduled_and_child_runs_act_for_their_owner_with_their_grants(
    http: httpx.AsyncClient,
    admin: Account,
    operator: Account,
    viewer: Account,
    http_receiver: HttpReceiver,
) -> None:
    credential_id = await basic_credential(http, admin)
    await grant(http, admin.headers, credential_id, users=[operator.id])
    job = await post(
        http,
        operator,
        "/jobs",
        calling_job(http_receiver, "only-basic")
        | {"steps": calling_job(http_receiver)["steps"][:1]},
    )
    schedule = await create_schedule(
        http, operator, job_id=job["id"], name="nightly-call", cron=NEVER_SOON
    )
    assert schedule["run_as"] == "olivia"
    renamed = await http.patch(
        api(f"/schedules/{schedule['id']}"), headers=admin.headers, json={"note": "mine now"}
    )
    assert renamed.json()["run_as"] == "admin"
    await http.patch(
        api(f"/schedules/{schedule['id']}"), headers=operator.headers, json={"note": "back"}
    )
    # A job.run child run acts for its parent's requester.
    parent = {
        "name": "parent",
        "steps": [
            {"id": "child", "run_once": True, "action": "job.run", "with": {"job": "only-basic"}}
        ],
    }
    parent_job = await post(http, operator, "/jobs", parent)

    await grant(http, admin.headers, credential_id)  # revoked
    await http.post(api(f"/schedules/{schedule['id']}/trigger"), headers=operator.headers)
    (scheduled,) = await wait_for_runs(http, viewer, job["id"], 1, 30)
    assert scheduled["status"] == "failed"
    assert (
        "job.steps.0.with.credential: credential 'svc-basic' is not granted to olivia"
        in scheduled["reason"]
    )
    parent_run = await post(http, operator, f"/jobs/{parent_job['id']}/runs", {})
    finished = await wait_for(http, operator, parent_run["id"], TERMINAL)
    (child,) = finished["steps"]
    assert child["status"] == "failed"
    assert "credential 'svc-basic' is not granted to olivia" in child["reason"]
    assert http_receiver.requests == []


async def test_a_bulk_import_refuses_an_ungranted_credential_row(
    http: httpx.AsyncClient, admin: Account, operator: Account
) -> None:
    await ssh_login_credential(http, admin)
    rows = [
        {"name": "imported", "address": "127.0.0.1", "protocol": "ssh", "credential": "root-pw"}
    ]
    report = (await http.post(api("/targets/import"), headers=operator.headers, json=rows)).json()
    assert report["failed"] == 1
    assert report["rows"][0]["errors"] == [
        {"path": "credential_id", "message": "credential 'root-pw' is not granted to olivia"}
    ]
