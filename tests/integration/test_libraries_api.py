"""Step libraries through the API: install, upgrade, pins in job versions, disable, remove,
the action catalog with plugins, and a library step run against the real sshd."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from temporalio import activity

from opsconductor.contracts.queues import TaskQueue
from opsconductor.worker.registry import WorkerResources, activities_for
from tests.fixtures.sshd import LoopbackSshd
from tests.identity_helpers import Account, api, assert_problem
from tests.library_helpers import tools_library
from tests.plugin_helpers import acme_plugin
from tests.run_helpers import TERMINAL, wait_for
from tests.vault_helpers import key_credential, post_ok, shared_credential, sshd_target

__all__ = ["acme_plugin"]

pytestmark = pytest.mark.integration


def greet_job(action: str = "tools/greet") -> dict[str, Any]:
    return {
        "name": "greeter",
        "targets": {"names": ["loopback"]},
        "steps": [{"id": "hello", "action": action, "with": {"who": "ops"}}],
    }


async def test_upgrading_a_library_leaves_saved_job_versions_as_they_were(
    http: httpx.AsyncClient, admin: Account, operator: Account, viewer: Account
) -> None:
    installed = await post_ok(http, "/libraries", admin.headers, tools_library())
    assert (installed["name"], installed["latest_version"]) == ("tools", "1.0.0")
    again = await http.post(api("/libraries"), json=tools_library(), headers=admin.headers)
    assert "POST /libraries/tools/versions" in assert_problem(again, 409)["detail"]

    created = await post_ok(http, "/jobs", operator.headers, greet_job())
    job_id = created["id"]
    assert created["libraries"] == [{"library": "tools", "version": "1.0.0", "steps": ["hello"]}]
    assert created["source"] == greet_job()
    (step,) = created["document"]["steps"]
    assert (step["id"], step["action"]) == ("hello", "ssh.command")
    first = (await http.get(api(f"/jobs/{job_id}/versions/1"), headers=viewer.headers)).json()

    upgrade = await http.post(
        api("/libraries/tools/versions"),
        json=tools_library("1.1.0", greeting="hi"),
        headers=admin.headers,
    )
    assert upgrade.status_code == 201, upgrade.text
    same = await http.post(
        api("/libraries/tools/versions"),
        json=tools_library("1.1.0", greeting="hi"),
        headers=admin.headers,
    )
    assert (same.status_code, same.headers["X-OpsConductor-Changed"]) == (200, "false")
    changed = await http.post(
        api("/libraries/tools/versions"),
        json=tools_library("1.1.0", greeting="hey"),
        headers=admin.headers,
    )
    assert "immutable" in assert_problem(changed, 409)["detail"]
    renamed = await http.post(
        api("/libraries/tools/versions"),
        json={**tools_library("1.2.0"), "name": "other"},
        headers=admin.headers,
    )
    assert [error["path"] for error in assert_problem(renamed, 422)["errors"]] == ["name"]

    # The saved version is untouched; saving the same document again picks up 1.1.0.
    assert (
        await http.get(api(f"/jobs/{job_id}/versions/1"), headers=viewer.headers)
    ).json() == first
    resaved = (
        await http.put(api(f"/jobs/{job_id}"), json=greet_job(), headers=operator.headers)
    ).json()
    assert resaved["version"] == 2
    assert resaved["libraries"][0]["version"] == "1.1.0"
    assert "echo hi" in resaved["document"]["steps"][0]["with"]["command"]
    unchanged = await http.put(api(f"/jobs/{job_id}"), json=greet_job(), headers=operator.headers)
    assert unchanged.headers["X-OpsConductor-Changed"] == "false"
    pinned = (
        await http.put(
            api(f"/jobs/{job_id}"), json=greet_job("tools/greet@1.0.0"), headers=operator.headers
        )
    ).json()
    assert (pinned["version"], pinned["libraries"][0]["version"]) == (3, "1.0.0")
    assert pinned["document"] == first["document"]

    # A disabled version is passed over by `tools/greet`; a disabled library by every save.
    disabled = await http.patch(
        api("/libraries/tools/versions/1.1.0"), json={"enabled": False}, headers=admin.headers
    )
    assert disabled.json()["enabled"] is False
    library = (await http.get(api("/libraries/tools"), headers=viewer.headers)).json()
    assert library["latest_version"] == "1.0.0"
    assert [item["version"] for item in library["versions"]] == ["1.1.0", "1.0.0"]
    await http.patch(api("/libraries/tools"), json={"enabled": False}, headers=admin.headers)
    refused = await http.post(api("/jobs/validate"), json=greet_job(), headers=operator.headers)
    assert refused.json()["errors"] == [
        {"path": "steps.0.action", "message": "the library 'tools' is disabled"}
    ]
    await http.patch(api("/libraries/tools"), json={"enabled": True}, headers=admin.headers)

    # Removal waits until no job's current version uses the library.
    in_use = await http.delete(api("/libraries/tools"), headers=admin.headers)
    assert assert_problem(in_use, 409)["jobs"] == ["greeter"]
    without = {
        "name": "greeter",
        "steps": [
            {"id": "nap", "run_once": True, "action": "control.sleep", "with": {"duration": "1s"}}
        ],
    }
    await http.put(api(f"/jobs/{job_id}"), json=without, headers=operator.headers)
    removed = await http.delete(api("/libraries/tools"), headers=admin.headers)
    assert removed.status_code == 204
    assert_problem(await http.get(api("/libraries/tools"), headers=viewer.headers), 404)
    history = (await http.get(api(f"/jobs/{job_id}/versions/1"), headers=admin.headers)).json()
    assert history == first

    audit = (
        await http.get(api("/audit"), params={"resource_type": "library"}, headers=admin.headers)
    ).json()
    actions = {item["action"] for item in audit["items"]}
    assert {"library.install", "library.upgrade", "library.version_update"} <= actions
    assert {"library.update", "library.delete"} <= actions


async def test_invalid_libraries_are_refused_with_the_path_of_each_problem(
    http: httpx.AsyncClient, admin: Account, operator: Account
) -> None:
    document = tools_library("v1")
    document["steps"]["greet"]["body"][0]["action"] = "ssh.teleport"
    answer = await http.post(api("/libraries"), json=document, headers=admin.headers)
    assert {error["path"] for error in assert_problem(answer, 422)["errors"]} == {"version"}

    document = tools_library()
    document["steps"]["greet"]["body"][0]["action"] = "ssh.teleport"
    document["steps"]["count"]["parameters"]["times"]["type"] = "int"
    answer = await http.post(api("/libraries"), json=document, headers=admin.headers)
    assert {error["path"] for error in assert_problem(answer, 422)["errors"]} == {
        "steps.count.parameters.times.type"
    }
    document["steps"]["count"]["parameters"]["times"]["type"] = "integer"
    document["steps"]["count"]["body"][1]["with"]["command"] = "echo {% if %}"
    answer = await http.post(api("/libraries"), json=document, headers=admin.headers)
    problems = assert_problem(answer, 422)["errors"]
    assert {error["path"] for error in problems} == {
        "steps.greet.body.0.action",
        "steps.count.body.1.with.command",
    }
    assert_problem(
        await http.post(api("/libraries"), json=tools_library(), headers=operator.headers), 403
    )


@pytest.mark.usefixtures("acme_plugin")
async def test_the_catalog_lists_core_library_and_plugin_actions(
    http: httpx.AsyncClient,
    admin: Account,
    operator: Account,
    viewer: Account,
    worker_resources: WorkerResources,
) -> None:
    builtin = await http.post(api("/libraries/builtin"), headers=admin.headers)
    assert builtin.json() == [
        {"name": "linux", "version": "1.0.0", "installed": True},
        {"name": "windows", "version": "1.0.0", "installed": True},
    ]
    again = await http.post(api("/libraries/builtin"), headers=admin.headers)
    assert {item["installed"] for item in again.json()} == {False}

    catalog = (await http.get(api("/steps"), headers=viewer.headers)).json()
    items = {item["name"]: item for item in catalog["items"]}
    assert items["ssh.command"]["kind"] == "core"
    disk = items["linux/disk-usage"]
    assert (disk["kind"], disk["version"], disk["queue"], disk["outputs"]) == (
        "library",
        "1.0.0",
        "ssh",
        ["stdout"],
    )
    assert disk["with_schema"]["properties"]["path"] == {
        "type": "string",
        "description": "Any path on the filesystem",
        "default": "/",
    }
    assert items["windows/event-log-query"]["queue"] == "winrm"
    assert {"linux/service-status", "linux/service-restart", "linux/package-install"} <= set(items)
    ping = items["acme.ping"]
    assert (ping["kind"], ping["queue"], ping["outputs"]) == ("plugin", "http", ["reachable"])
    assert ping["with_schema"]["required"] == ["host"]
    assert "steps" in catalog["library_document_schema"]["properties"]

    def pinger(count: int) -> dict[str, Any]:
        ping = {"id": "ping", "action": "acme.ping", "with": {"host": "db-1", "count": count}}
        return {"name": "pinger", "steps": [ping]}

    answer = await http.post(api("/jobs/validate"), json=pinger(0), headers=operator.headers)
    assert [error["path"] for error in answer.json()["errors"]] == ["steps.0.with.count"]
    answer = await http.post(api("/jobs/validate"), json=pinger(3), headers=operator.headers)
    report = answer.json()
    assert (report["valid"], report["errors"]) == (True, [])
    assert report["document"]["steps"][0]["with"] == {"host": "db-1", "count": 3}

    # A worker serving the plugin's queue registers its activity.
    names = [
        activity._Definition.must_from_callable(item).name
        for item in activities_for(TaskQueue.http, worker_resources)
    ]
    assert "plugin:acme.ping" in names


@pytest.mark.usefixtures("workers")
async def test_a_job_with_library_steps_runs_and_later_steps_read_their_outputs(
    http: httpx.AsyncClient, admin: Account, operator: Account, sshd: LoopbackSshd
) -> None:
    await post_ok(http, "/libraries/builtin", admin.headers, {})
    await post_ok(http, "/libraries", admin.headers, tools_library())
    credential = await shared_credential(http, admin.headers, key_credential(sshd))
    await post_ok(http, "/targets", admin.headers, sshd_target(sshd, credential["id"]))
    document = {
        "name": "disk-check",
        "parameters": {"mount": {"type": "string", "default": "/tmp"}, "n": {"type": "integer"}},
        "targets": {"names": ["loopback"]},
        "steps": [
            {
                "id": "disk",
                "action": "linux/disk-usage@1.0.0",
                "with": {"path": "{{ params.mount }}"},
            },
            {
                "id": "report",
                "needs": ["disk"],
                "action": "ssh.command",
                "with": {"command": "echo used={{ steps.disk.outputs.stdout }}%"},
            },
            {
                "id": "tally",
                "needs": ["report"],
                "action": "tools/count",
                "with": {"word": "{{ steps.report.stdout }}", "times": "{{ params.n }}"},
            },
        ],
    }
    job = await post_ok(http, "/jobs", operator.headers, document)
    assert [pin["library"] for pin in job["libraries"]] == ["linux", "tools"]
    started = await http.post(
        api(f"/jobs/{job['id']}/runs"), json={"parameters": {"n": 5}}, headers=operator.headers
    )
    assert started.status_code == 202, started.text
    run = await wait_for(http, operator, started.json()["id"], TERMINAL)
    assert run["status"] == "succeeded", run
    (target,) = run["targets"]
    steps = {step["id"]: step for step in target["steps"]}
    assert set(steps) == {"disk", "report", "tally__echo", "tally"}
    used = steps["disk"]["stdout"]
    assert used.isdigit()
    assert 0 <= int(used) <= 100
    assert steps["report"]["stdout"] == f"used={used}%"
    assert steps["tally__echo"]["stdout"] == f"used={used}%-loopback"
    assert steps["tally"]["stdout"] == f"used={used}%-loopback 10"
