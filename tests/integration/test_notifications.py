"""Notifications for real: e-mail to the loopback SMTP sink and webhooks to the HTTP receiver,
through apprise on the notify worker; a broken channel retried and logged without failing its
run; and a channel's URL kept out of every answer, the delivery log, our logs and history."""

import asyncio
import base64
import logging
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google.protobuf.message import Message
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from opsconductor.cli.keys import rotate_keys
from opsconductor.config import Settings
from opsconductor.db import create_engine, create_sessionmaker
from opsconductor.security.envelope import KeyRing
from opsconductor.security.keys import load_process_keys
from opsconductor.services.channels import reveal_channel
from opsconductor.services.sealing import keyring_from
from opsconductor.temporal.client import connect
from opsconductor.temporal.codec import EncryptionCodec
from tests.fixtures.http_receiver import HttpReceiver
from tests.fixtures.ports import free_port
from tests.fixtures.smtp_sink import SmtpSink
from tests.identity_helpers import Account, api, assert_problem
from tests.run_helpers import TERMINAL, post, wait_for

pytestmark = pytest.mark.integration
with_workers = pytest.mark.usefixtures("workers")

PLANTED = "Planted-Pa55word"


async def run_job(
    client: httpx.AsyncClient, who: Account, document: dict[str, Any]
) -> tuple[str, str]:
    """Saves the job and starts a run of it: (job id, run id)."""
    job = await post(client, who, "/jobs", document)
    accepted = await post(client, who, f"/jobs/{job['id']}/runs", {})
    return job["id"], accepted["id"]


async def deliveries(
    client: httpx.AsyncClient, who: Account, until: set[str] | None = None, **filters: str
) -> list[dict[str, Any]]:
    """The delivery log, waiting (when `until` is given) until every row's status is in it."""
    for _ in range(100):
        answer = await client.get(api("/notifications"), params=filters, headers=who.headers)
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        if until is None or (items and all(item["status"] in until for item in items)):
            return items
        await asyncio.sleep(0.1)
    raise AssertionError(f"deliveries stayed {items}")


def mail_url(sink: SmtpSink) -> str:
    assert sink.password is not None
    return (
        f"mailto://{sink.username}:{sink.password}@{sink.host}:{sink.port}"
        f"?smtp={sink.host}&from=ops@example.com&to=team@example.com&mode=insecure"
    )


@with_workers
async def test_a_channel_url_is_write_only_and_test_sends_reach_the_service(
    http: httpx.AsyncClient, admin: Account, viewer: Account, http_receiver: HttpReceiver
) -> None:
    url = f"json://hook:{PLANTED}@127.0.0.1:{http_receiver.port}/first"
    answers: list[str] = []
    created = await http.post(
        api("/notification-channels"),
        json={"name": "hook", "url": url, "description": "team webhook"},
        headers=admin.headers,
    )
    assert created.status_code == 201, created.text
    channel = created.json()
    assert (channel["scheme"], channel["service"], channel["url_redacted"]) == (
        "json",
        "JSON",
        "json://…",
    )
    answers.append(created.text)
    answers.append((await http.get(api("/notification-channels"), headers=viewer.headers)).text)
    one = await http.get(api(f"/notification-channels/{channel['id']}"), headers=viewer.headers)
    assert one.json()["name"] == "hook"
    answers.append(one.text)

    moved = f"json://hook:{PLANTED}@127.0.0.1:{http_receiver.port}/second"
    patched = await http.patch(
        api(f"/notification-channels/{channel['id']}"), json={"url": moved}, headers=admin.headers
    )
    assert patched.status_code == 200, patched.text
    answers.append(patched.text)

    refused = await http.post(
        api("/notification-channels"), json={"name": "x", "url": url}, headers=viewer.headers
    )
    assert_problem(refused, 403)
    bad = await http.post(
        api("/notification-channels"),
        json={"name": "bad", "url": f"nosuchservice://u:{PLANTED}@h"},
        headers=admin.headers,
    )
    problem = assert_problem(bad, 422)
    assert [error["path"] for error in problem["errors"]] == ["body.url"]
    answers.append(bad.text)

    tested = await http.post(
        api(f"/notification-channels/{channel['id']}/test"), headers=admin.headers
    )
    assert tested.status_code == 200, tested.text
    assert tested.json()["ok"] is True, tested.text
    answers.append(tested.text)
    (request,) = http_receiver.wait_for(1)
    assert request.path == "/second"  # the new URL replaced the old one
    assert request.json["title"] == "OpsConductor test message"

    (logged,) = await deliveries(http, viewer, channel_id=channel["id"])
    assert (logged["event"], logged["status"], logged["attempts"]) == ("test", "delivered", 1)
    audit = await http.get(api("/audit"), params={"limit": 500}, headers=admin.headers)
    actions = {event["action"] for event in audit.json()["items"]}
    assert {"channel.create", "channel.update", "channel.test"} <= actions
    answers.append(audit.text)
    for text in answers:
        assert PLANTED not in text
        assert "/first" not in text
        assert "/second" not in text


@with_workers
async def test_job_rules_email_the_run_start_approval_and_end(
    http: httpx.AsyncClient,
    admin: Account,
    operator: Account,
    smtp_sink: SmtpSink,
    settings: Settings,
) -> None:
    await post(
        http, admin, "/notification-channels", {"name": "ops-mail", "url": mail_url(smtp_sink)}
    )
    document = {
        "name": "mail-rules",
        "notify": [{"on": ["start", "approval", "success", "failure"], "channel": "ops-mail"}],
        "steps": [
            {
                "id": "gate",
                "run_once": True,
                "action": "control.approval",
                "with": {"message": "Ship it?"},
            }
        ],
    }
    _, run_id = await run_job(http, operator, document)
    waiting = await wait_for(http, operator, run_id, {"waiting_approval", *TERMINAL})
    assert waiting["status"] == "waiting_approval", waiting
    await post(http, admin, f"/runs/{run_id}/approvals", {"step": "gate", "decision": "approve"})
    assert (await wait_for(http, operator, run_id, TERMINAL))["status"] == "succeeded"

    # In a thread: the worker sending the mail shares this event loop.
    received = await asyncio.to_thread(smtp_sink.wait_for, 3, 15)
    mails = {mail.subject: mail for mail in received}
    assert set(mails) == {
        "mail-rules: running",
        "mail-rules: waiting approval",
        "mail-rules: succeeded",
    }
    assert all(mail.rcpt_tos == ["team@example.com"] for mail in mails.values())
    assert "Step gate asks: Ship it?" in mails["mail-rules: waiting approval"].body
    ended = mails["mail-rules: succeeded"].body
    assert f"run {run_id}: succeeded" in ended
    assert "0 target(s)" in ended
    assert f"{settings.public_url}/api/v1/runs/{run_id}" in ended

    logged = await deliveries(http, operator, until={"delivered"}, run_id=run_id)
    assert sorted(item["event"] for item in logged) == ["approval", "start", "success"]
    assert all(item["channel_name"] == "ops-mail" and item["attempts"] == 1 for item in logged)


@with_workers
async def test_a_notify_send_step_posts_its_templated_message_to_a_webhook(
    http: httpx.AsyncClient, admin: Account, operator: Account, http_receiver: HttpReceiver
) -> None:
    channel = await post(
        http,
        admin,
        "/notification-channels",
        {"name": "hook", "url": f"json://hook:{PLANTED}@127.0.0.1:{http_receiver.port}/hook"},
    )
    document = {
        "name": "tell-hook",
        "parameters": {"who": {"type": "string", "default": "ops"}},
        "steps": [
            {
                "id": "tell",
                "run_once": True,
                "action": "notify.send",
                "with": {
                    "channel": "hook",
                    "title": "{{ job.name }} says hi to {{ params.who }}",
                    "body": "run {{ run.id }} at {{ run.url }}",
                },
            }
        ],
    }
    _, run_id = await run_job(http, operator, document)
    run = await wait_for(http, operator, run_id, TERMINAL)
    assert run["status"] == "succeeded", run
    (step,) = run["steps"]
    assert step["outputs"] == {"delivered": True}

    (request,) = await asyncio.to_thread(http_receiver.wait_for, 1)
    assert request.path == "/hook"
    assert request.json["title"] == "tell-hook says hi to ops"
    assert request.json["message"] == f"run {run_id} at http://127.0.0.1:8000/api/v1/runs/{run_id}"

    (logged,) = await deliveries(http, operator, run_id=run_id)
    assert (logged["event"], logged["step_id"], logged["status"]) == ("step", "tell", "delivered")

    in_use = await http.delete(
        api(f"/notification-channels/{channel['id']}"), headers=admin.headers
    )
    assert assert_problem(in_use, 409)["jobs"] == ["tell-hook"]


def payloads_in(message: Message) -> Iterator[Payload]:
    """Every payload anywhere in a history event: inputs, results, failures, headers, memos."""
    if isinstance(message, Payload):
        yield message
        return
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None:
            continue
        if descriptor.message_type.GetOptions().map_entry:
            items = list(value.values())
        elif isinstance(value, Message):
            items = [value]
        else:  # a repeated field
            items = list(value)
        for item in items:
            if isinstance(item, Message):
                yield from payloads_in(item)


@with_workers
async def test_a_failing_channel_is_retried_and_logged_while_the_run_succeeds(
    http: httpx.AsyncClient,
    admin: Account,
    operator: Account,
    settings: Settings,
    temporal_address: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    closed = free_port("127.0.0.1")
    url = f"json://alert:{PLANTED}@127.0.0.1:{closed}/alert"
    await post(http, admin, "/notification-channels", {"name": "broken", "url": url})
    document = {
        "name": "quiet-failure",
        "notify": [
            {"on": ["success"], "channel": "broken", "retry": {"attempts": 3, "interval": "100ms"}}
        ],
        "steps": [
            {"id": "nap", "run_once": True, "action": "control.sleep", "with": {"duration": "10ms"}}
        ],
    }
    _, run_id = await run_job(http, operator, document)
    assert (await wait_for(http, operator, run_id, TERMINAL))["status"] == "succeeded"

    (logged,) = await deliveries(http, operator, until={"failed"}, run_id=run_id)
    assert (logged["event"], logged["attempts"]) == ("success", 3)
    assert logged["last_error"].startswith("JSON: A Connection error occurred")
    assert "127.0.0.1" in logged["last_error"]

    workflow_id = f"run-{run_id}"
    summary = await (await connect(settings)).get_workflow_handle(workflow_id).result()
    assert summary["status"] == "succeeded"  # a failed notification never fails the run
    run = (await http.get(api(f"/runs/{run_id}"), headers=operator.headers)).json()
    assert run["status"] == "succeeded"

    raw = await Client.connect(temporal_address, namespace=settings.temporal_namespace)
    # The message went out in a delivery workflow of its own, apart from the run's.
    histories = [
        await raw.get_workflow_handle(workflow_id).fetch_history(),
        await raw.get_workflow_handle(f"notification-{logged['id']}").fetch_history(),
    ]
    # As the Web UI's codec endpoint reads history: the server's own plain payloads shown as is.
    decoded = await EncryptionCodec(load_process_keys(settings), accept_plain=True).decode(
        [
            payload
            for history in histories
            for event in history.events
            for payload in payloads_in(event)
        ]
    )
    assert len(decoded) > 10
    seen = [
        *(history.to_json() for history in histories),
        *(payload.data.decode(errors="replace") for payload in decoded),
    ]
    # The check reads plaintext: the delivery's input and its failures are among what it reads.
    assert any('"channel":"broken"' in text for text in seen)
    assert any("A Connection error occurred" in text for text in seen)
    # pytest also hooks apprise's own logger, which does not propagate to ours.
    ours = [record.getMessage() for record in caplog.records if record.name != "apprise"]
    everything = "\n".join([*seen, *ours, str(logged), str(run)])
    assert PLANTED not in everything
    assert f":{closed}/alert" not in everything


async def test_key_rotation_rewraps_channels_too(
    http: httpx.AsyncClient, admin: Account, settings: Settings
) -> None:
    url = f"json://hook:{PLANTED}@127.0.0.1:9/hook"
    await post(http, admin, "/notification-channels", {"name": "hook", "url": url})
    rotated = settings.model_copy(
        update={
            "master_key": SecretStr(base64.b64encode(secrets.token_bytes(32)).decode()),
            "master_keys_old": [settings.master_key],
        }
    )
    keyring = keyring_from(load_process_keys(rotated))
    engine = create_engine(settings)
    try:
        sessionmaker = create_sessionmaker(engine)
        report = await rotate_keys(sessionmaker, keyring, batch_size=10)
        assert (report.rewrapped, report.current) == (1, 1)
        # Only the new master key remains, and the worker still opens the channel.
        only_new = KeyRing(load_process_keys(rotated).master_key)
        async with sessionmaker() as session:
            channel = await reveal_channel(session, only_new, "hook")
    finally:
        await engine.dispose()
    assert channel.url == url
    assert PLANTED not in repr(channel)
