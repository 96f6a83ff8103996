"""Jobs through the API: validation with paths, immutable versions, idempotent saves."""

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.identity_helpers import Account, api, assert_problem

pytestmark = pytest.mark.integration

# The example jobs shipped with the repository: <repo>/examples.
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def sleeper(name: str = "nap", duration: str = "1s") -> dict[str, Any]:
    return {
        "name": name,
        "steps": [
            {
                "id": "nap",
                "run_once": True,
                "action": "control.sleep",
                "with": {"duration": duration},
            }
        ],
    }


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda path: path.stem)
async def test_the_examples_validate_through_the_api(
    http: httpx.AsyncClient, operator: Account, path: Path
) -> None:
    answer = await http.post(
        api("/jobs/validate"), json=yaml.safe_load(path.read_text()), headers=operator.headers
    )
    assert answer.status_code == 200
    body = answer.json()
    assert (body["valid"], body["errors"]) == (True, [])
    # The answer carries the document as a save would store it.
    assert body["document"]["name"] == path.stem


async def test_validate_names_every_problem_by_path(
    http: httpx.AsyncClient, operator: Account
) -> None:
    document = {
        "name": "broken",
        "steps": [
            {"id": "a", "action": "ssh.teleport"},
            {
                "id": "b",
                "action": "http.request",
                "with": {"url": "x", "verb": "GET"},
                "needs": ["a", "b"],
            },
        ],
    }
    answer = (
        await http.post(api("/jobs/validate"), json=document, headers=operator.headers)
    ).json()
    assert answer["valid"] is False
    paths = {error["path"] for error in answer["errors"]}
    assert {"steps.0.action", "steps.1.with.verb", "steps.1.needs.1"} <= paths


async def test_saving_makes_versions_and_an_unchanged_save_makes_none(
    http: httpx.AsyncClient, operator: Account, viewer: Account
) -> None:
    created = await http.post(api("/jobs"), json=sleeper(), headers=operator.headers)
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["version"] == 1
    assert job["created_by"] == operator.username

    same = await http.put(api(f"/jobs/{job['id']}"), json=sleeper(), headers=operator.headers)
    assert same.json()["version"] == 1
    assert same.headers["X-OpsConductor-Changed"] == "false"

    changed = await http.put(
        api(f"/jobs/{job['id']}"), json=sleeper(duration="2s"), headers=operator.headers
    )
    assert changed.json()["version"] == 2
    versions = (await http.get(api(f"/jobs/{job['id']}/versions"), headers=viewer.headers)).json()
    assert [item["version"] for item in versions["items"]] == [2, 1]
    assert versions["items"][1]["document"]["steps"][0]["with"] == {"duration": "1s"}

    listed = (await http.get(api("/jobs"), params={"q": "na"}, headers=viewer.headers)).json()
    assert [item["name"] for item in listed["items"]] == ["nap"]


async def test_invalid_documents_and_duplicates_are_refused(
    http: httpx.AsyncClient, operator: Account
) -> None:
    invalid = await http.post(
        api("/jobs"),
        json={"name": "x", "steps": [{"id": "a", "action": "nope"}]},
        headers=operator.headers,
    )
    problem = assert_problem(invalid, 422)
    assert problem["errors"][0]["path"] == "steps.0.action"

    await http.post(api("/jobs"), json=sleeper(), headers=operator.headers)
    duplicate = await http.post(api("/jobs"), json=sleeper(), headers=operator.headers)
    assert_problem(duplicate, 409)


async def test_viewers_read_jobs_but_cannot_change_them(
    http: httpx.AsyncClient, operator: Account, viewer: Account
) -> None:
    job = (await http.post(api("/jobs"), json=sleeper(), headers=operator.headers)).json()
    assert (await http.get(api(f"/jobs/{job['id']}"), headers=viewer.headers)).status_code == 200
    for method, path, body in (
        ("POST", "/jobs", sleeper("other")),
        ("PUT", f"/jobs/{job['id']}", sleeper()),
        ("DELETE", f"/jobs/{job['id']}", None),
        ("POST", f"/jobs/{job['id']}/runs", {}),
    ):
        answer = await http.request(method, api(path), json=body, headers=viewer.headers)
        assert_problem(answer, 403)


async def test_deleted_jobs_disappear_and_free_their_name(
    http: httpx.AsyncClient, operator: Account
) -> None:
    job = (await http.post(api("/jobs"), json=sleeper(), headers=operator.headers)).json()
    assert (
        await http.delete(api(f"/jobs/{job['id']}"), headers=operator.headers)
    ).status_code == 204
    assert_problem(await http.get(api(f"/jobs/{job['id']}"), headers=operator.headers), 404)
    again = await http.post(api("/jobs"), json=sleeper(), headers=operator.headers)
    assert again.status_code == 201


async def test_the_step_catalog_lists_available_actions_with_schemas(
    http: httpx.AsyncClient, viewer: Account
) -> None:
    catalog = (await http.get(api("/steps"), headers=viewer.headers)).json()
    names = {item["name"] for item in catalog["items"]}
    assert {
        "ssh.command",
        "ssh.script",
        "http.request",
        "control.sleep",
        "control.approval",
        "ssh.upload",
        "winrm.powershell",
        "winrm.cmd",
    } <= names
    actions = {item["name"]: item for item in catalog["items"]}
    assert "url" in actions["http.request"]["with_schema"]["required"]
    upload = actions["ssh.upload"]
    assert (upload["queue"], upload["outputs"]) == ("ssh", ["bytes", "sha256"])
    assert upload["with_schema"]["required"] == ["dest"]
    assert {"dest", "content", "file", "mode"} <= set(upload["with_schema"]["properties"])
    for name, field in (("winrm.powershell", "script"), ("winrm.cmd", "command")):
        assert actions[name]["queue"] == "winrm"
        assert actions[name]["outputs"] == ["exit_code", "stdout", "stderr"]
        assert actions[name]["with_schema"]["required"] == [field]
    assert "steps" in catalog["job_document_schema"]["properties"]
