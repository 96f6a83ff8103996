"""http.request authenticating with vault credentials, against the loopback HTTP receiver: the
receiver gets the credentials, the run shows none of them."""

import base64
import itertools
import json
import socket
import threading
import uuid
from contextlib import suppress
from urllib.parse import urlsplit

import httpx
import pytest
from sqlmodel import select
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from opsconductor.activities.http import HttpActions
from opsconductor.activities.http_chunks import HttpChunks
from opsconductor.contracts.runs import RunStatus
from opsconductor.contracts.steps import (
    MemberResult,
    StepRequest,
    StepResult,
    TargetSnapshot,
)
from opsconductor.db import unit_of_work
from opsconductor.jobspec.document import TargetSelector
from opsconductor.models.credential import CredentialAccess
from opsconductor.models.target import Target
from opsconductor.services.targets import resolve_selector
from opsconductor.temporal.client import connect
from opsconductor.worker.registry import WorkerResources
from tests.engine_helpers import (
    chunk_request,
    recorded_steps,
    scheduled_activities,
    second_try,
    start_run,
)
from tests.fixtures.http_receiver import HttpReceiver
from tests.identity_helpers import Account
from tests.run_helpers import TERMINAL, start_job_run, wait_for
from tests.vault_helpers import grant, planted_secret, post_ok

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]

# Each target's own path on the receiver, so its answer can differ from the others'.
PER_TARGET_URL = "http://{{ target.address }}:{{ target.port }}/{{ target.name }}"


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


class ClosesKeptAliveConnections:
    """An HTTP server that answers the first request on each connection (keeping it alive)
    and closes the connection on the second without a word: as a server does whose keep-alive
    timeout ends as a client reuses the connection. Records (connection, method) per request."""

    def __init__(self) -> None:
        self.requests: list[tuple[int, str]] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/hook"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with suppress(OSError):
            for number in itertools.count():
                connection, _ = self._listener.accept()
                threading.Thread(target=self._serve, args=(connection, number), daemon=True).start()

    def _serve(self, connection: socket.socket, number: int) -> None:
        with connection, connection.makefile("rb") as incoming:
            for answered in (True, False):
                method = incoming.readline().split(b" ")[0].decode()
                length = 0
                while (line := incoming.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                incoming.read(length)
                self.requests.append((number, method))
                if answered:
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def close(self) -> None:
        self._listener.close()


async def test_an_idempotent_request_is_sent_again_when_its_kept_alive_connection_was_closed(
    worker_resources: WorkerResources,
) -> None:
    server = ClosesKeptAliveConnections()
    actions = HttpActions(
        worker_resources.settings, worker_resources.sessionmaker, worker_resources.keyring
    )
    environment = ActivityEnvironment()

    async def send(method: str) -> StepResult:
        request = StepRequest(
            run_id=uuid.uuid4(),
            step_id=method.lower(),
            action="http.request",
            with_={"url": server.url, "method": method},
            context={},
        )
        return await environment.run(actions.run_step, request)

    try:
        assert (await send("GET")).outputs["status"] == 200
        # The same connection again: closed before an answer, so sent again on a new one.
        assert (await send("PUT")).outputs["status"] == 200
        # A POST is never sent twice: its step fails, and says why.
        with pytest.raises(ApplicationError) as failure:
            await send("POST")
    finally:
        server.close()
    assert "POST" in failure.value.message
    assert "Server disconnected without sending a response" in failure.value.message
    assert server.requests == [(0, "GET"), (0, "PUT"), (1, "PUT"), (1, "POST")]


async def receiver_targets(
    resources: WorkerResources, receiver: HttpReceiver, addresses: list[str]
) -> tuple[list[str], list[TargetSnapshot]]:
    """Inventory targets at these addresses with the receiver's port (at 127.0.0.1, they are
    the receiver), as a run resolves them."""
    names = [f"web-{uuid.uuid4().hex[:6]}-t{n}" for n in range(len(addresses))]
    async with unit_of_work(resources.sessionmaker) as session:
        session.add_all(
            Target(name=name, address=address, port=urlsplit(receiver.url).port or 80)
            for name, address in zip(names, addresses, strict=True)
        )
    async with resources.sessionmaker() as session:
        return names, await resolve_selector(session, TargetSelector(names=names))


async def test_a_batch_runs_each_http_step_as_one_chunk_with_per_target_results(
    http: httpx.AsyncClient,
    admin: Account,
    worker_resources: WorkerResources,
    http_receiver: HttpReceiver,
) -> None:
    """Two `http.request` steps over five targets in one batch are two activities, not ten
    (docs/engine.md, "Scale: chunked steps"), and each target keeps its own result: t2's
    service answers 500 where 200 is expected, so t2 fails after its two attempts and skips
    the next step; t4 is at the metadata address, which the egress policy refuses (once: no
    retry changes that); the others succeed at once and the next step reads their status.
    The secret the first step sends is read once for the chunk, logged for every target."""
    names, targets = await receiver_targets(
        worker_resources, http_receiver, ["127.0.0.1"] * 4 + ["169.254.169.254"]
    )
    secret_name = f"chunk-key-{uuid.uuid4().hex[:6]}"
    api_key = await planted_secret(http, admin.headers, secret_name)
    t0, t1, t2, t3, t4 = names
    http_receiver.respond(f"/{t2}", status=500, json={"broken": True})
    document = {
        "name": f"http-chunk-{uuid.uuid4().hex[:8]}",
        "strategy": {"concurrency": 5},
        "steps": [
            {
                "id": "call",
                "action": "http.request",
                "with": {
                    "url": PER_TARGET_URL,
                    "headers": {"X-Api-Key": f"{{{{ secret('{secret_name}') }}}}"},
                },
                "retry": {"attempts": 2, "interval": "10ms"},
            },
            {
                "id": "report",
                "needs": ["call"],
                "action": "http.request",
                "with": {
                    "url": PER_TARGET_URL + "/report?status={{ steps.call.outputs.status }}",
                },
            },
        ],
    }
    temporal = await connect(worker_resources.settings)
    handle = await start_run(
        temporal, worker_resources.sessionmaker, document, targets, batch_size=5
    )
    summary = await handle.result()
    assert summary.status is RunStatus.failed
    steps = await recorded_steps(worker_resources.sessionmaker, summary.run_id)
    for name in (t0, t1, t3):
        call = steps[(name, "call")]
        assert (call.status, call.attempts, call.outputs["status"]) == ("succeeded", 1, 200)
        assert steps[(name, "report")].status == "succeeded"
    broken = steps[(t2, "call")]
    assert (broken.status, broken.attempts, broken.outputs["status"]) == ("failed", 2, 500)
    url = f"http://127.0.0.1:{targets[2].port}/{t2}"
    assert broken.reason == f"GET {url} answered 500, expected 200"
    refused = steps[(t4, "call")]
    assert (refused.status, refused.attempts, refused.reason) == (
        "failed",
        1,
        "with.url: 169.254.169.254 resolves to 169.254.169.254, in the denied network "
        "169.254.0.0/16 (OPSCONDUCTOR_HTTP_DENIED_NETWORKS)",
    )
    for name in (t2, t4):
        assert (steps[(name, "report")].status, steps[(name, "report")].reason) == (
            "skipped",
            "upstream_failed",
        )
    paths = sorted(
        (request.path, request.query.get("status", [""])[0]) for request in http_receiver.requests
    )
    assert paths == sorted(
        [(f"/{name}", "") for name in names[:4]]
        + [(f"/{t2}", "")]
        + [(f"/{name}/report", "200") for name in (t0, t1, t3)]
    )
    assert {
        request.headers.get("X-Api-Key")
        for request in http_receiver.requests
        if "/report" not in request.path
    } == {api_key}
    scheduled = await scheduled_activities(temporal, summary.run_id)
    assert [(event.activity_type.name, event.task_queue.name) for event in scheduled] == [
        ("http-request-chunk", "http")
    ] * 2
    async with worker_resources.sessionmaker() as session:
        access = (
            await session.exec(
                select(CredentialAccess).where(CredentialAccess.run_id == summary.run_id)
            )
        ).all()
    assert sorted((row.credential_name, row.step_id, row.target) for row in access) == [
        (secret_name, "call", name) for name in sorted(names)
    ]
    assert len({row.accessed_at for row in access}) == 1


async def test_an_http_chunk_retried_after_its_worker_was_lost_sends_only_unfinished_requests(
    worker_resources: WorkerResources, http_receiver: HttpReceiver
) -> None:
    """The chunk activity's second try, given the first try's last heartbeat (t0 finished, t1
    on its first attempt), answers t0's result from it and sends only t1's request, as its
    attempt 2."""
    names, targets = await receiver_targets(worker_resources, http_receiver, ["127.0.0.1"] * 2)
    quick = {
        "name": f"http-resume-{uuid.uuid4().hex[:8]}",
        "steps": [{"id": "quick", "action": "http.request", "with": {"url": PER_TARGET_URL}}],
    }
    temporal: Client = await connect(worker_resources.settings)
    handle = await start_run(temporal, worker_resources.sessionmaker, quick, targets)
    run_id = (await handle.result()).run_id
    http_receiver.reset()
    request = chunk_request(
        run_id, "resumed", "http.request", {"url": PER_TARGET_URL + "/resumed"}, targets
    )
    t0, t1 = names
    done = MemberResult(target=t0, result=StepResult(output_recorded=True))
    environment = second_try(done, {t1: 1})
    actions = HttpActions(
        worker_resources.settings, worker_resources.sessionmaker, worker_resources.keyring
    )
    chunks = HttpChunks(worker_resources.sessionmaker, actions)
    result = await environment.run(chunks.run_chunk, request)
    assert [request.path for request in http_receiver.requests] == [f"/{t1}/resumed"]
    members = {member.target: member for member in result.members}
    assert members[t0] == done
    assert (members[t1].error, members[t1].result.attempt) == (None, 2)
    steps = await recorded_steps(worker_resources.sessionmaker, run_id)
    resumed = steps[(t1, "resumed")]
    assert (resumed.status, resumed.attempts, resumed.outputs["status"]) == ("succeeded", 2, 200)
    assert (t0, "resumed") not in steps
