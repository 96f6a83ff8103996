"""Discovery through the API with real nmap against the loopback sshd and HTTP receiver: scans,
import, cancel, refusals, and `nmap.scan` as a job step."""

import asyncio
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.fixtures.http_receiver import HttpReceiver
from tests.fixtures.sshd import LoopbackSshd
from tests.identity_helpers import Account, api, assert_problem
from tests.run_helpers import TERMINAL, wait_for
from tests.vault_helpers import key_credential, post_ok, shared_credential

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


async def start_scan(client: httpx.AsyncClient, who: Account, **body: Any) -> dict[str, Any]:
    response = await client.post(api("/discovery/scans"), headers=who.headers, json=body)
    assert response.status_code == 202, response.text
    scan: dict[str, Any] = response.json()
    return scan


async def wait_for_scan(
    client: httpx.AsyncClient, who: Account, scan_id: str, done: Any = lambda scan: False
) -> dict[str, Any]:
    """Polls the scan until it ends, or until `done(scan)` holds."""
    for _ in range(600):
        response = await client.get(api(f"/discovery/scans/{scan_id}"), headers=who.headers)
        scan: dict[str, Any] = response.json()
        if scan["status"] in TERMINAL or done(scan):
            return scan
        await asyncio.sleep(0.1)
    raise AssertionError(f"scan {scan_id} stayed {scan['status']}")


async def import_hosts(
    client: httpx.AsyncClient, who: Account, scan_id: str, **body: Any
) -> httpx.Response:
    return await client.post(
        api(f"/discovery/scans/{scan_id}/import"), headers=who.headers, json=body
    )


async def start_run(
    client: httpx.AsyncClient, who: Account, job_id: str, parameters: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(
        api(f"/jobs/{job_id}/runs"), headers=who.headers, json={"parameters": parameters}
    )
    assert response.status_code == 202, response.text
    run: dict[str, Any] = response.json()
    return run


def nmap_processes() -> list[psutil.Process]:
    """nmap processes started by this test process (the workers run in it)."""
    return [
        child
        for child in psutil.Process().children(recursive=True)
        if child.is_running() and child.name() == "nmap"
    ]


async def test_a_scan_of_loopback_finds_sshd_and_the_receiver_and_imports_a_working_target(
    http: httpx.AsyncClient,
    admin: Account,
    operator: Account,
    viewer: Account,
    sshd: LoopbackSshd,
    http_receiver: HttpReceiver,
) -> None:
    ports = f"{sshd.port},{http_receiver.port}"
    refused = await http.post(
        api("/discovery/scans"), headers=viewer.headers, json={"hosts": "127.0.0.1"}
    )
    assert_problem(refused, 403)

    accepted = await start_scan(
        http, operator, name="loopback", hosts="127.0.0.1", ports=ports, timing="T4"
    )
    assert accepted["status"] == "queued"
    assert accepted["options"]["hosts"] == ["127.0.0.1"]
    scan = await wait_for_scan(http, viewer, accepted["id"])
    assert scan["status"] == "succeeded", scan
    assert (scan["requested_by"], scan["hosts_found"]) == (operator.username, 1)
    assert scan["progress"]["percent"] == 100
    (host,) = scan["hosts"]
    assert (host["address"], host["hostname"]) == ("127.0.0.1", "localhost")
    found = {port["port"]: port for port in host["open_ports"]}
    assert set(found) == {sshd.port, http_receiver.port}
    assert (found[sshd.port]["service"], found[sshd.port]["product"]) == ("ssh", "OpenSSH")
    assert found[sshd.port]["version"]
    assert found[http_receiver.port]["service"] == "http"
    listed = await http.get(api("/discovery/scans"), headers=viewer.headers)
    assert [item["name"] for item in listed.json()["items"]] == ["loopback"]

    credential = await shared_credential(http, admin.headers, key_credential(sshd))
    await post_ok(http, "/target-groups", operator.headers, {"name": "found"})
    choice = {
        "addresses": ["127.0.0.1"],
        "credential_id": credential["id"],
        "groups": ["found"],
        "tags": {"source": "discovery"},
    }
    imported = await import_hosts(http, operator, scan["id"], **choice)
    assert imported.status_code == 200, imported.text
    (target,) = imported.json()["created"]
    assert (target["name"], target["address"], target["protocol"], target["port"]) == (
        "localhost",
        "127.0.0.1",
        "ssh",
        sshd.port,
    )
    assert (target["groups"], target["tags"]) == (["found"], {"source": "discovery"})
    test = await http.post(api(f"/targets/{target['id']}/test"), headers=operator.headers)
    assert test.json()["ok"] is True, test.json()

    again = await import_hosts(http, operator, scan["id"], **choice)
    assert again.json() == {
        "created": [],
        "existing": [{"address": "127.0.0.1", "target": "localhost"}],
        "skipped": [],
    }
    unknown = await import_hosts(
        http, operator, scan["id"], **{**choice, "addresses": ["127.0.0.1", "10.9.9.9"]}
    )
    assert [item["path"] for item in assert_problem(unknown, 422)["errors"]] == ["body.addresses.1"]
    audit = await http.get(
        api("/audit"), headers=admin.headers, params={"action": "discovery.import"}
    )
    assert [(row["actor_username"], row["outcome"]) for row in audit.json()["items"]] == [
        (operator.username, "failure"),
        (operator.username, "success"),
        (operator.username, "success"),
    ]


async def test_an_import_skips_hosts_without_a_login_port_or_a_fitting_credential(
    http: httpx.AsyncClient,
    admin: Account,
    operator: Account,
    sshd: LoopbackSshd,
    http_receiver: HttpReceiver,
) -> None:
    # Without -sV, nmap names a port from its services table only: no ssh here.
    only_http = await start_scan(
        http,
        operator,
        hosts="127.0.0.1",
        ports=str(http_receiver.port),
        timing="T5",
        service_detection=False,
    )
    assert (await wait_for_scan(http, operator, only_http["id"]))["status"] == "succeeded"
    windows = await shared_credential(
        http,
        admin.headers,
        {"name": "win", "kind": "winrm", "username": "u", "secret": {"password": "p"}},
    )
    answer = await import_hosts(
        http, operator, only_http["id"], addresses=["127.0.0.1"], credential_id=windows["id"]
    )
    assert answer.json()["skipped"] == [
        {
            "address": "127.0.0.1",
            "reason": "no SSH (22, or a port nmap identified as ssh) or WinRM (5985/5986) "
            "port is open",
        }
    ]
    ssh_scan = await start_scan(
        http, operator, hosts="127.0.0.1", ports=str(sshd.port), timing="T5"
    )
    assert (await wait_for_scan(http, operator, ssh_scan["id"]))["status"] == "succeeded"
    answer = await import_hosts(
        http, operator, ssh_scan["id"], addresses=["127.0.0.1"], credential_id=windows["id"]
    )
    assert answer.json()["skipped"] == [
        {
            "address": "127.0.0.1",
            "reason": f"ssh on port {sshd.port}, and credential 'win' is winrm",
        }
    ]
    # An address already in the inventory (by hand) is reported, not duplicated.
    await post_ok(
        http,
        "/targets",
        operator.headers,
        {"name": "by-hand", "address": "127.0.0.1", "port": sshd.port},
    )
    answer = await import_hosts(http, operator, ssh_scan["id"], addresses=["127.0.0.1"])
    assert answer.json()["existing"] == [{"address": "127.0.0.1", "target": "by-hand"}]


HOSTILE = [
    ({"hosts": "127.0.0.1 -oN /tmp/opsc-discovery-x"}, "body.hosts"),
    ({"hosts": "--script=http-title"}, "body.hosts"),
    ({"hosts": ["127.0.0.1", "-iL", "/etc/passwd"]}, "body.hosts"),
    ({"hosts": "10.0.0.0/16"}, "body.hosts"),
    ({"hosts": "127.0.0.1", "ports": "22 -oN /tmp/opsc-discovery-x"}, "body.ports"),
    ({"hosts": "127.0.0.1", "timing": "T4 --script=x"}, "body.timing"),
    ({"hosts": "127.0.0.1", "arguments": "--script=x"}, "body.arguments"),
]


async def test_hostile_scan_requests_are_refused_naming_the_field(
    http: httpx.AsyncClient, operator: Account
) -> None:
    for body, path in HOSTILE:
        response = await http.post(api("/discovery/scans"), headers=operator.headers, json=body)
        problem = assert_problem(response, 422)
        assert {item["path"] for item in problem["errors"]} == {path}, body
    listed = await http.get(api("/discovery/scans"), headers=operator.headers)
    assert listed.json()["total"] == 0
    assert nmap_processes() == []
    assert not Path("/tmp/opsc-discovery-x").exists()


async def test_cancelling_a_running_scan_kills_nmap(
    http: httpx.AsyncClient, operator: Account, viewer: Account
) -> None:
    # Every port at "polite" timing would take hours.
    accepted = await start_scan(
        http, operator, hosts="127.0.0.1", ports="1-65535", timing="T2", service_detection=False
    )
    running = await wait_for_scan(
        http, viewer, accepted["id"], lambda scan: scan["progress"]["percent"] is not None
    )
    assert running["status"] == "running"
    assert running["progress"]["task"]
    (scanner,) = nmap_processes()
    assert "-T2" in scanner.cmdline()

    assert_problem(
        await http.post(api(f"/discovery/scans/{accepted['id']}/cancel"), headers=viewer.headers),
        403,
    )
    cancel = await http.post(
        api(f"/discovery/scans/{accepted['id']}/cancel"), headers=operator.headers
    )
    assert cancel.status_code == 202, cancel.text
    ended = await wait_for_scan(http, viewer, accepted["id"])
    assert (ended["status"], ended["reason"]) == ("cancelled", "the scan was cancelled")
    assert not scanner.is_running() or scanner.status() == psutil.STATUS_ZOMBIE
    assert nmap_processes() == []
    again = await http.post(
        api(f"/discovery/scans/{accepted['id']}/cancel"), headers=operator.headers
    )
    assert_problem(again, 409)


async def test_nmap_scan_is_a_job_step_whose_scan_can_be_imported(
    http: httpx.AsyncClient, operator: Account, viewer: Account, sshd: LoopbackSshd
) -> None:
    document = {
        "name": "nightly-scan",
        "parameters": {"net": {"type": "string", "default": "127.0.0.1"}},
        "steps": [
            {
                "id": "scan",
                "run_once": True,
                "action": "nmap.scan",
                "with": {"hosts": "{{ params.net }}", "ports": str(sshd.port), "timing": "T5"},
            }
        ],
    }
    job = await post_ok(http, "/jobs", operator.headers, document)
    started = await start_run(http, operator, job["id"], {})
    run = await wait_for(http, viewer, started["id"], TERMINAL)
    assert run["status"] == "succeeded", run
    (step,) = run["steps"]
    assert step["outputs"]["addresses"] == ["127.0.0.1"]
    (host,) = step["outputs"]["hosts"]
    assert [port["port"] for port in host["open_ports"]] == [sshd.port]
    assert step["stdout"].startswith(f"127.0.0.1 (localhost): {sshd.port}/tcp ssh OpenSSH")

    scan = await wait_for_scan(http, viewer, step["outputs"]["scan_id"])
    assert (scan["name"], scan["status"], scan["run_id"]) == (
        "nightly-scan/scan",
        "succeeded",
        started["id"],
    )
    assert scan["requested_by"] == operator.username
    imported = await import_hosts(http, operator, scan["id"], addresses=["127.0.0.1"])
    assert [target["port"] for target in imported.json()["created"]] == [sshd.port]

    # A parameter is checked on the worker after rendering, like a literal on save.
    hostile = await start_run(
        http, operator, job["id"], {"net": "127.0.0.1 -oN /tmp/opsc-discovery-x"}
    )
    run = await wait_for(http, viewer, hostile["id"], TERMINAL)
    assert run["status"] == "failed"
    assert run["steps"][0]["reason"].startswith("with.hosts: '127.0.0.1 -oN")
    assert not Path("/tmp/opsc-discovery-x").exists()


async def test_hosts_and_ports_are_checked_as_a_scan_would_check_them(
    http: httpx.AsyncClient, operator: Account, viewer: Account
) -> None:
    check = api("/discovery/scans/check")
    answer = await http.get(
        check,
        params={"hosts": "127.0.0.1, 10.0.0.0/30", "ports": "22, 80"},
        headers=operator.headers,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "hosts": ["127.0.0.1", "10.0.0.0/30"],
        "addresses": 5,
        "ports": "22,80",
    }
    wrong = await http.get(
        check, params={"hosts": "-oX", "ports": "70000"}, headers=operator.headers
    )
    problems = {error["path"]: error["message"] for error in assert_problem(wrong, 422)["errors"]}
    assert set(problems) == {"query.hosts", "query.ports"}
    assert "no spaces, no options" in problems["query.hosts"]
    assert "outside 1-65535" in problems["query.ports"]
    refused = await http.get(check, params={"hosts": "127.0.0.1"}, headers=viewer.headers)
    assert_problem(refused, 403)
    # Nothing was started.
    listed = await http.get(api("/discovery/scans"), headers=operator.headers)
    assert listed.json()["total"] == 0
