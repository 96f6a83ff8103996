"""Event triggers through the real API: Alertmanager, GitHub and generic deliveries to
`/hooks/{id}`, their signatures, deduplication, the rate limit and the delivery log."""

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.identity_helpers import Account, api, assert_problem
from tests.run_helpers import TERMINAL, create_job, post, target_steps, wait_for
from tests.vault_helpers import grant, planted_secret

pytestmark = pytest.mark.integration
# For the tests whose runs execute; the others start none.
with_workers = pytest.mark.usefixtures("workers")

SECRET = "s3cret-token-for-the-hook-0123456789"
# A run-once step that needs no target: runs that end at once.
PAUSE = {"id": "pause", "run_once": True, "action": "control.sleep", "with": {"duration": "10ms"}}


def cleanup_job(name: str, parameter: str) -> dict[str, Any]:
    """A job of one SSH step on whichever target the trigger names, echoing one parameter."""
    return {
        "name": name,
        "parameters": {parameter: {"type": "string"}},
        "steps": [
            {
                "id": "clean",
                "action": "ssh.command",
                "with": {"command": f"echo cleaning {{{{ params.{parameter} }}}}"},
            }
        ],
    }


async def create_trigger(
    http: httpx.AsyncClient, who: Account, job_id: str, **fields: Any
) -> dict[str, Any]:
    return await post(http, who, "/triggers", {"job_id": job_id, "secret": SECRET, **fields})


def alert(fingerprint: str, severity: str, instance: str, **labels: str) -> dict[str, Any]:
    return {
        "status": "firing",
        "fingerprint": fingerprint,
        "labels": {"alertname": "DiskFull", "severity": severity, "instance": instance, **labels},
    }


def notification(*alerts: dict[str, Any]) -> bytes:
    return json.dumps(
        {"version": "4", "status": "firing", "receiver": "ops", "alerts": list(alerts)}
    ).encode()


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def deliver(
    http: httpx.AsyncClient, trigger: dict[str, Any], body: bytes, **headers: str
) -> httpx.Response:
    return await http.post(
        trigger["url"], content=body, headers={"Content-Type": "application/json", **headers}
    )


async def events(http: httpx.AsyncClient, who: Account, trigger: dict[str, Any]) -> list[Any]:
    answer = await http.get(
        api(f"/triggers/{trigger['id']}/events"), params={"limit": 500}, headers=who.headers
    )
    assert answer.status_code == 200, answer.text
    items: list[Any] = answer.json()["items"]
    return items


async def runs_of(http: httpx.AsyncClient, who: Account, job_id: str) -> list[dict[str, Any]]:
    answer = await http.get(
        api("/runs"), params={"job_id": job_id, "limit": 500}, headers=who.headers
    )
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


@with_workers
async def test_an_alert_starts_one_run_on_its_target_once_and_only_with_the_token(
    http: httpx.AsyncClient, admin: Account, operator: Account, viewer: Account, loopback: str
) -> None:
    job_id = await create_job(http, operator, cleanup_job("disk-cleanup", "mount"))
    trigger = await create_trigger(
        http,
        operator,
        job_id,
        name="disk-alerts",
        source="alertmanager",
        parameters={"mount": "{{ alert.labels.mountpoint }}"},
        targets={"names": ["{{ alert.labels.instance }}"]},
        when="{{ alert.labels.severity == 'critical' }}",
        dedup_key="{{ alert.fingerprint }}",
        dedup_window="10m",
    )
    assert trigger["url"] == f"/hooks/{trigger['id']}"
    assert "secret" not in trigger
    assert SECRET not in json.dumps(trigger)
    body = notification(
        alert("f-critical", "critical", loopback, mountpoint="/var"),
        alert("f-warning", "warning", "elsewhere", mountpoint="/home"),
        {**alert("f-resolved", "critical", loopback, mountpoint="/"), "status": "resolved"},
    )
    bearer = {"Authorization": f"Bearer {SECRET}"}

    first = await deliver(http, trigger, body, **bearer)
    assert first.status_code == 202, first.text
    assert (len(first.json()["runs"]), first.json()["filtered"]) == (1, 2)
    run = await wait_for(http, operator, first.json()["runs"][0], TERMINAL)
    assert (run["status"], run["triggered_by"]) == ("succeeded", "trigger:disk-alerts")
    assert run["parameters"] == {"mount": "/var"}
    assert [target["name"] for target in run["targets"]] == [loopback]
    assert target_steps(run)["clean"]["stdout"] == "cleaning /var"

    again = await deliver(http, trigger, body, **bearer)
    assert again.json() == {"runs": [], "deduplicated": 1, "filtered": 2, "invalid": 0}
    for headers in ({"Authorization": "Bearer not-the-token"}, {}):
        refused = assert_problem(await deliver(http, trigger, body, **headers), 401)
        assert SECRET not in json.dumps(refused)
    oversized = await deliver(http, trigger, b" " * (1024 * 1024 + 1), **bearer)
    assert_problem(oversized, 413)
    # A mapping that fails (no `mountpoint` label) names its template and starts nothing.
    unmapped = await deliver(
        http, trigger, notification(alert("f-other", "critical", loopback)), **bearer
    )
    problem = assert_problem(unmapped, 422)
    assert problem["errors"][0]["path"] == "trigger.parameters.mount"
    assert len(await runs_of(http, operator, job_id)) == 1

    log = await events(http, viewer, trigger)
    assert Counter(event["decision"] for event in log) == {
        "started": 1,
        "filtered": 4,
        "deduplicated": 1,
        "refused": 3,
        "invalid": 1,
    }
    digest = hashlib.sha256(body).hexdigest()
    assert {event["payload_sha256"] for event in log if event["decision"] == "started"} == {digest}
    assert SECRET not in json.dumps(log)

    # With on_resolved, the resolved alert is an event too, and starts its run.
    resolved = await http.patch(
        api(f"/triggers/{trigger['id']}"), json={"on_resolved": True}, headers=operator.headers
    )
    assert resolved.status_code == 200, resolved.text
    third = await deliver(http, trigger, body, **bearer)
    assert (len(third.json()["runs"]), third.json()["deduplicated"]) == (1, 1)
    run = await wait_for(http, operator, third.json()["runs"][0], TERMINAL)
    assert target_steps(run)["clean"]["stdout"] == "cleaning /"

    # Changes are audited, without the secret.
    audited = await http.get(
        api("/audit"), params={"resource_id": trigger["id"]}, headers=admin.headers
    )
    rows = audited.json()["items"]
    assert {row["action"] for row in rows} == {"trigger.create", "trigger.update"}
    assert SECRET not in json.dumps(rows)

    # An unknown trigger and a disabled one answer alike.
    unknown = await http.post(f"/hooks/{uuid.uuid4()}", content=body, headers=bearer)
    patched = await http.patch(
        api(f"/triggers/{trigger['id']}"), json={"enabled": False}, headers=operator.headers
    )
    assert patched.status_code == 200, patched.text
    disabled = await deliver(http, trigger, body, **bearer)
    same = ("type", "title", "status", "detail")
    assert [assert_problem(unknown, 404)[key] for key in same] == [
        assert_problem(disabled, 404)[key] for key in same
    ]


@with_workers
async def test_github_and_generic_signatures(
    http: httpx.AsyncClient, operator: Account, loopback: str
) -> None:
    job_id = await create_job(http, operator, cleanup_job("deploy", "sha"))
    github = await create_trigger(
        http,
        operator,
        job_id,
        name="pushes",
        source="github",
        parameters={"sha": "{{ event.after }}"},
        targets={"names": [loopback]},
        when="{{ event_name == 'push' }}",
    )
    push = json.dumps({"ref": "refs/heads/main", "after": "9f2c" * 10}).encode()
    ping = await deliver(
        http, github, b"{}", **{"X-GitHub-Event": "ping", "X-Hub-Signature-256": sign(b"{}")}
    )
    assert ping.json() == {"runs": [], "deduplicated": 0, "filtered": 1, "invalid": 0}
    bad = await deliver(
        http, github, push, **{"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(b"other")}
    )
    assert_problem(bad, 401)
    good = await deliver(
        http, github, push, **{"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(push)}
    )
    assert good.status_code == 202, good.text
    (run_id,) = good.json()["runs"]
    run = await http.get(api(f"/runs/{run_id}"), headers=operator.headers)
    assert run.json()["parameters"] == {"sha": "9f2c" * 10}

    generic = await create_trigger(
        http,
        operator,
        job_id,
        name="anything",
        source="generic",
        parameters={"sha": "{{ payload.sha }}"},
        targets={"names": [loopback]},
    )
    body = json.dumps({"sha": "abc123"}).encode()

    def signed(stamp: int) -> dict[str, str]:
        return {
            "X-OpsConductor-Timestamp": str(stamp),
            "X-OpsConductor-Signature": sign(str(stamp).encode() + b"." + body),
        }

    stale = await deliver(http, generic, body, **signed(int(time.time()) - 600))
    assert "5 minutes" in assert_problem(stale, 401)["detail"]
    fresh = signed(int(time.time()))
    accepted = await deliver(http, generic, body, **fresh)
    assert accepted.status_code == 202, accepted.text
    assert len(accepted.json()["runs"]) == 1
    replayed = await deliver(http, generic, body, **fresh)
    assert "replayed" in assert_problem(replayed, 401)["detail"]
    assert len(await runs_of(http, operator, job_id)) == 2


@with_workers
async def test_a_burst_of_repeated_alerts_starts_one_run_per_alert(
    http: httpx.AsyncClient, operator: Account, viewer: Account
) -> None:
    job_id = await create_job(
        http,
        operator,
        {"name": "acknowledge", "parameters": {"alert": {"type": "string"}}, "steps": [PAUSE]},
    )
    trigger = await create_trigger(
        http,
        operator,
        job_id,
        name="burst",
        source="alertmanager",
        parameters={"alert": "{{ alert.fingerprint }}"},
        dedup_key="{{ alert.fingerprint }}",
        rate_limit=1000,
    )
    bodies = [notification(alert(f"f{index % 20}", "critical", "any")) for index in range(200)]
    answers = await asyncio.gather(
        *(deliver(http, trigger, body, Authorization=f"Bearer {SECRET}") for body in bodies)
    )
    assert {answer.status_code for answer in answers} == {202}
    assert sum(answer.json()["invalid"] for answer in answers) == 0, answers[0].json()
    started = [run for answer in answers for run in answer.json()["runs"]]
    assert len(started) == 20
    assert sum(answer.json()["deduplicated"] for answer in answers) == 180
    runs = await runs_of(http, operator, job_id)
    assert sorted(run["id"] for run in runs) == sorted(started)
    log = await events(http, viewer, trigger)
    assert Counter(event["decision"] for event in log) == {"started": 20, "deduplicated": 180}
    assert {event["run_id"] for event in log} == set(started)


async def test_the_rate_limit_refuses_with_429_and_records_it(
    http: httpx.AsyncClient, operator: Account, viewer: Account
) -> None:
    job_id = await create_job(http, operator, {"name": "limited", "steps": [PAUSE]})
    trigger = await create_trigger(
        http, operator, job_id, name="limited", source="alertmanager", rate_limit=2
    )
    bearer = {"Authorization": f"Bearer {SECRET}"}
    # Forged deliveries do not count against the limit; authentic ones past it are refused.
    forged = await deliver(http, trigger, notification(), Authorization="Bearer forged")
    statuses = [
        (await deliver(http, trigger, notification(), **bearer)).status_code for _ in range(3)
    ]
    assert (forged.status_code, statuses) == (401, [202, 202, 429])
    log = await events(http, viewer, trigger)
    assert [event["decision"] for event in log] == ["rate_limited", "refused"]

    # A trigger whose job is gone refuses, saying so.
    raised = await http.patch(
        api(f"/triggers/{trigger['id']}"), json={"rate_limit": 100}, headers=operator.headers
    )
    assert raised.status_code == 200, raised.text
    deleted = await http.delete(api(f"/jobs/{job_id}"), headers=operator.headers)
    assert deleted.status_code == 204, deleted.text
    orphaned = await deliver(http, trigger, notification(), **bearer)
    assert "its job is gone" in assert_problem(orphaned, 409)["detail"]


async def test_a_trigger_whose_owner_lost_a_credential_grant_refuses_naming_it(
    http: httpx.AsyncClient, admin: Account, operator: Account
) -> None:
    await planted_secret(http, admin.headers, "api-token", granted_to=["operator"])
    job_id = await create_job(
        http,
        operator,
        {
            "name": "call-out",
            "steps": [
                {
                    "id": "call",
                    "run_once": True,
                    "action": "http.request",
                    "with": {
                        "url": "http://127.0.0.1:9/",
                        "headers": {"Authorization": "{{ secret('api-token') }}"},
                    },
                }
            ],
        },
    )
    trigger = await create_trigger(http, operator, job_id, name="calls", source="alertmanager")
    credentials = await http.get(api("/credentials"), headers=admin.headers)
    (credential,) = [item for item in credentials.json()["items"] if item["name"] == "api-token"]
    await grant(http, admin.headers, credential["id"])
    refused = await deliver(
        http,
        trigger,
        notification(alert("f1", "critical", "any")),
        Authorization=f"Bearer {SECRET}",
    )
    assert "'api-token' is not granted to olivia" in assert_problem(refused, 409)["detail"]
    assert await runs_of(http, operator, job_id) == []


async def test_a_test_event_shows_the_decision_and_starts_a_run_only_when_asked(
    http: httpx.AsyncClient, admin: Account, operator: Account, viewer: Account
) -> None:
    job_id = await create_job(
        http,
        operator,
        {"name": "tested", "parameters": {"mount": {"type": "string"}}, "steps": [PAUSE]},
    )
    trigger = await create_trigger(
        http,
        operator,
        job_id,
        name="tested",
        source="alertmanager",
        parameters={"mount": "{{ alert.labels.mountpoint }}"},
        when="{{ alert.labels.severity == 'critical' }}",
        dedup_key="{{ alert.fingerprint }}",
    )
    path = api(f"/triggers/{trigger['id']}/test")

    async def send(body: dict[str, Any]) -> dict[str, Any]:
        answer = await http.post(path, json=body, headers=operator.headers)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    # No payload: the sample Alertmanager alert (critical, /var), as a dry run.
    dry = await send({})
    assert (dry["dry_run"], dry["decisions"], dry["runs"]) == (True, ["would_start"], [])
    assert dry["events"][0]["parameters"] == {"mount": "/var"}
    assert dry["events"][0]["target_names"] == []  # the job's own selector: none
    assert dry["payload"]["alerts"][0]["labels"]["mountpoint"] == "/var"
    assert await runs_of(http, operator, job_id) == []
    warning = json.loads(notification(alert("f-warn", "warning", "any", mountpoint="/")))
    assert (await send({"payload": warning}))["decisions"] == ["filtered"]

    live = await send({"dry_run": False})
    (run_id,) = live["runs"]
    assert live["decisions"] == ["started"]
    run = await http.get(api(f"/runs/{run_id}"), headers=operator.headers)
    assert (run.json()["triggered_by"], run.json()["parameters"]) == (
        "trigger:tested",
        {"mount": "/var"},
    )
    # The same alert again, inside the dedup window: the dry run names the run it would repeat.
    again = await send({})
    assert (again["decisions"], again["events"][0]["run_id"]) == (["deduplicated"], run_id)

    # Dry runs do not count against the rate limit; a live test does, as a delivery would.
    limited = await http.patch(
        api(f"/triggers/{trigger['id']}"), json={"rate_limit": 1}, headers=operator.headers
    )
    assert limited.status_code == 200, limited.text
    assert (await send({}))["decisions"] == ["deduplicated"]
    assert_problem(await http.post(path, json={"dry_run": False}, headers=operator.headers), 429)
    disabled = await http.patch(
        api(f"/triggers/{trigger['id']}"), json={"enabled": False}, headers=operator.headers
    )
    assert disabled.status_code == 200, disabled.text
    live_on_disabled = await http.post(path, json={"dry_run": False}, headers=operator.headers)
    assert "only a dry run" in assert_problem(live_on_disabled, 409)["detail"]

    refused = assert_problem(await http.post(path, json={}, headers=viewer.headers), 403)
    assert "secret" not in json.dumps(refused)
    not_alerts = await http.post(
        path, json={"payload": {"alerts": "none"}}, headers=operator.headers
    )
    assert assert_problem(not_alerts, 422)["errors"][0]["path"] == "body.payload.alerts"
    not_object = await http.post(path, json={"payload": "text"}, headers=operator.headers)
    assert assert_problem(not_object, 422)["errors"][0]["path"] == "body.payload"

    log = await events(http, viewer, trigger)
    assert [(event["decision"], event["test"]) for event in log] == [
        ("invalid", "dry_run"),
        ("rate_limited", "live"),
        ("deduplicated", "dry_run"),
        ("deduplicated", "dry_run"),
        ("started", "live"),
        ("filtered", "dry_run"),
        ("would_start", "dry_run"),
    ]
    assert [run["id"] for run in await runs_of(http, operator, job_id)] == [run_id]
    audited = await http.get(
        api("/audit"),
        params={"resource_id": trigger["id"], "action": "trigger.test"},
        headers=admin.headers,
    )
    assert audited.json()["total"] == 10, audited.text
