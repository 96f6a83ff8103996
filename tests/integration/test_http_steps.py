"""http.request authenticating with vault credentials, against the loopback HTTP receiver: the
receiver gets the credentials, the run shows none of them."""

import base64
import json
import uuid

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from opsconductor.activities.http import HttpActions
from opsconductor.contracts.steps import StepRequest
from opsconductor.worker.registry import WorkerResources
from tests.fixtures.http_receiver import HttpReceiver
from tests.identity_helpers import Account
from tests.run_helpers import TERMINAL, start_job_run, wait_for
from tests.vault_helpers import grant, planted_secret, post_ok

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


def call(step_id: str, url: str, **with_: object) -> dict[str, object]:
    return {
        "id": step_id,
        "run_once": True,
        "action": "http.request",
        "with": {"url": url, **with_},
    }


async def test_basic_bearer_and_secret_headers_reach_the_service_but_not_the_run(
    http: httpx.AsyncClient,
    admin: Account,
    operator: Account,
    http_receiver: HttpReceiver,
) -> None:
    basic_credential = await post_ok(
        http,
        "/credentials",
        admin.headers,
        {
            "name": "svc-basic",
            "kind": "http_basic",
            "username": "deploy",
            "secret": {"password": "basic-pass-4711"},
        },
    )
    token_credential = await post_ok(
        http,
        "/credentials",
        admin.headers,
        {"name": "svc-token", "kind": "http_bearer", "secret": {"token": "bearer-tok-4711"}},
    )
    api_key = await planted_secret(http, admin.headers, "api-key", granted_to=["operator"])
    # The operator may use the admin's credentials only once granted (docs/security.md).
    await grant(http, admin.headers, basic_credential["id"], users=[operator.id])
    await grant(http, admin.headers, token_credential["id"], roles=["operator"])
    # The service echoes what it was sent: a careless action would put it on the record.
    http_receiver.respond("/echo", status=200, json={"seen": "bearer-tok-4711"})
    run_id = await start_job_run(
        http,
        operator,
        {
            "name": "authenticated-calls",
            "steps": [
                call("basic", http_receiver.url + "/basic", credential="svc-basic"),
                call("bearer", http_receiver.url + "/echo", credential="svc-token"),
                call(
                    "header",
                    http_receiver.url + "/header",
                    headers={"X-Api-Key": "{{ secret('api-key') }}"},
                ),
            ],
        },
    )
    run = await wait_for(http, operator, run_id, TERMINAL)
    assert run["status"] == "succeeded", run
    seen = {
        request.path: {name.lower(): value for name, value in request.headers.items()}
        for request in http_receiver.requests
    }
    basic = base64.b64encode(b"deploy:basic-pass-4711").decode()
    assert seen["/basic"]["authorization"] == f"Basic {basic}"
    assert seen["/echo"]["authorization"] == "Bearer bearer-tok-4711"
    assert seen["/header"]["x-api-key"] == api_key
    recorded = json.dumps(run)
    for secret in ("basic-pass-4711", "bearer-tok-4711", api_key, basic):
        assert secret not in recorded


async def test_a_credential_of_the_wrong_kind_is_refused_naming_the_field(
    http: httpx.AsyncClient, admin: Account, operator: Account, http_receiver: HttpReceiver
) -> None:
    await planted_secret(http, admin.headers, "not-http", granted_to=["operator"])
    run_id = await start_job_run(
        http,
        operator,
        {
            "name": "wrong-kind",
            "steps": [call("call", http_receiver.url + "/x", credential="not-http")],
        },
    )
    run = await wait_for(http, operator, run_id, TERMINAL)
    (step,) = run["steps"]
    assert step["status"] == "failed"
    assert step["reason"] == (
        "with.credential: 'not-http' is a secret credential; "
        "http.request authenticates with http_basic or http_bearer"
    )
    assert http_receiver.requests == []


async def test_a_request_heartbeats_while_it_waits_for_the_answer(
    worker_resources: WorkerResources, http_receiver: HttpReceiver
) -> None:
    # Steps have a 30 s heartbeat timeout; without heartbeats, an answer (or a busy server's
    # accept) slower than that failed the step as "timed out (heartbeat)".
    http_receiver.respond("/slow", delay=0.5)
    actions = HttpActions(
        worker_resources.settings, worker_resources.sessionmaker, worker_resources.keyring
    )
    beats: list[tuple[object, ...]] = []
    environment = ActivityEnvironment()
    environment.on_heartbeat = lambda *details: beats.append(details)
    request = StepRequest(
        run_id=uuid.uuid4(),
        step_id="slow",
        action="http.request",
        with_={"url": f"{http_receiver.url}/slow", "timeout": "45s"},
        context={},
    )
    result = await environment.run(actions.run_step, request)
    assert result.outputs["status"] == 200
    assert beats
