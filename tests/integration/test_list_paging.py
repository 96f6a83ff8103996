"""Lists continue by cursor (`next`) and count only up to a cap (docs/api.md "Lists"), through
the API and the console."""

import asyncio
import base64
import json
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from opsconductor.contracts.runs import RunStatus
from opsconductor.db import unit_of_work
from opsconductor.models.base import utcnow
from opsconductor.models.run import Run
from opsconductor.models.target import Target
from opsconductor.services import paging
from tests.e2e.test_up import user_env
from tests.identity_helpers import Account, api, assert_problem
from tests.run_helpers import create_job

pytestmark = pytest.mark.integration

JOB = {
    "name": "paged",
    "steps": [
        {"id": "noop", "action": "control.sleep", "run_once": True, "with": {"duration": "1s"}}
    ],
}


async def plant_runs(
    app: FastAPI, job_id: str, moments: list[datetime], status: RunStatus = RunStatus.failed
) -> list[str]:
    """Finished runs created at `moments`, written straight to the database."""
    ids = [uuid.uuid4() for _ in moments]
    async with unit_of_work(app.state.sessionmaker) as session:
        session.add_all(
            Run(
                id=run_id, job_id=uuid.UUID(job_id), job_name="paged", job_version=1,
                status=status, triggered_by="test", workflow_id=f"run-{run_id}",
                created_at=moment,
            )
            for run_id, moment in zip(ids, moments, strict=True)
        )  # fmt: skip
    return [str(run_id) for run_id in ids]


async def listed(
    http: httpx.AsyncClient, who: Account, path: str, **params: str | int
) -> dict[str, Any]:
    answer = await http.get(api(path), headers=who.headers, params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def retagged(cursor: str, change: Any) -> str:
    """The cursor's sort key values with `change` applied: a client's tampering."""
    values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    return base64.urlsafe_b64encode(json.dumps(change(values)).encode()).decode()


async def test_runs_paged_by_cursor_come_once_each_in_order_while_runs_arrive(
    http: httpx.AsyncClient, app: FastAPI, operator: Account
) -> None:
    job_id = await create_job(http, operator, JOB)
    base = utcnow() - timedelta(hours=1)
    # Pairs created in the same microsecond: only the id orders them.
    await plant_runs(app, job_id, [base - timedelta(minutes=n // 2) for n in range(7)])

    first = await listed(http, operator, "/runs", limit=3)
    assert (first["total"], first["total_capped"], len(first["items"])) == (7, False, 3)
    assert first["next"] is not None
    # Between pages, one run newer than the cursor (before it: not on later pages) and one older.
    (newer,) = await plant_runs(app, job_id, [base + timedelta(minutes=1)])
    (older,) = await plant_runs(app, job_id, [base - timedelta(minutes=30)])
    seen = [item["id"] for item in first["items"]]
    cursor = first["next"]
    while cursor is not None:
        page = await listed(http, operator, "/runs", limit=3, cursor=cursor)
        assert (page["total"], page["offset"]) == (9, 0)
        seen += [item["id"] for item in page["items"]]
        cursor = page["next"]
    everything = await listed(http, operator, "/runs", limit=50)
    in_order = [item["id"] for item in everything["items"]]
    assert everything["next"] is None
    assert (in_order[0], in_order[-1]) == (newer, older)
    assert seen == in_order[1:]

    # An offset page's `next` continues from it, and a page that ends the list has none.
    middle = await listed(http, operator, "/runs", limit=3, offset=3)
    assert [item["id"] for item in middle["items"]] == in_order[3:6]
    rest = await listed(http, operator, "/runs", limit=5, cursor=middle["next"])
    assert [item["id"] for item in rest["items"]] == in_order[6:]
    assert rest["next"] is None


async def test_a_cursor_tampered_with_or_given_with_an_offset_is_refused_by_name(
    http: httpx.AsyncClient, app: FastAPI, operator: Account
) -> None:
    job_id = await create_job(http, operator, JOB)
    await plant_runs(app, job_id, [utcnow() - timedelta(minutes=n) for n in range(3)])
    runs_cursor = (await listed(http, operator, "/runs", limit=1))["next"]
    for name in ("web-1", "web-2"):
        answer = await http.post(
            api("/targets"), headers=operator.headers, json={"name": name, "address": "a.lan"}
        )
        assert answer.status_code == 201, answer.text
    targets_cursor = (await listed(http, operator, "/targets", limit=1))["next"]
    refused = [
        ("/runs", "not base64 at all!"),
        ("/runs", base64.urlsafe_b64encode(b"not json").decode()),
        ("/runs", retagged(runs_cursor, lambda values: values[:1])),
        ("/runs", retagged(runs_cursor, lambda values: [values[0], ["u", "not-a-uuid"]])),
        ("/runs", retagged(runs_cursor, lambda values: [["i", 5], values[1]])),
        ("/runs", retagged(runs_cursor, lambda values: [["t", "2026-01-01T00:00:00"], values[1]])),
        ("/targets", retagged(targets_cursor, lambda values: [["s", "web\u0000"]])),
        ("/targets", runs_cursor),
    ]
    for path, cursor in refused:
        problem = assert_problem(
            await http.get(api(path), headers=operator.headers, params={"cursor": cursor}), 422
        )
        assert [error["path"] for error in problem["errors"]] == ["query.cursor"], cursor
    both = await http.get(
        api("/targets"), headers=operator.headers, params={"cursor": targets_cursor, "offset": 1}
    )
    assert assert_problem(both, 422)["errors"][0]["path"] == "query.cursor"
    after = await listed(http, operator, "/targets", limit=1, cursor=targets_cursor)
    assert [item["name"] for item in after["items"]] == ["web-2"]


async def test_past_the_cap_the_total_says_so_in_the_api_and_the_console(
    http: httpx.AsyncClient,
    app: FastAPI,
    admin: Account,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(paging, "TOTAL_CAP", 2)
    job_id = await create_job(http, admin, JOB)
    recent = [utcnow() - timedelta(minutes=n) for n in range(3)]
    await plant_runs(app, job_id, recent)
    await plant_runs(app, job_id, recent[:2], RunStatus.cancelled)
    failed = await listed(http, admin, "/runs", status="failed", limit=1)
    assert (failed["total"], failed["total_capped"]) == (2, True)
    cancelled = await listed(http, admin, "/runs", status="cancelled", limit=1)
    assert (cancelled["total"], cancelled["total_capped"]) == (2, False)

    signed_in = await http.post(
        "/login", data={"username": admin.username, "password": admin.password}
    )
    assert signed_in.status_code == 303, signed_in.text
    dashboard = (await http.get("/partials/dashboard")).text
    assert '<span class="count">2+</span> <span class="status s-failed">' in dashboard
    assert '<span class="count">2</span> <span class="status s-cancelled">' in dashboard
    runs_page = (await http.get("/runs", params={"status": "failed"})).text
    assert "2+ in all." in runs_page


async def test_the_cli_pages_by_next_and_shows_a_capped_count(
    served: httpx.AsyncClient,
    http: httpx.AsyncClient,
    app: FastAPI,
    admin: Account,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def cli(*arguments: str) -> tuple[str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "opsconductor", *arguments,
            env=user_env(
                OPSCONDUCTOR_URL=str(served.base_url),
                OPSCONDUCTOR_TOKEN=admin.tokens["access_token"],
                XDG_CONFIG_HOME=str(tmp_path / "config"),
            ),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, stderr.decode()
        return stdout.decode(), stderr.decode()

    # One more target than the CLI's page (500): the last by name is on the second page.
    async with unit_of_work(app.state.sessionmaker) as session:
        session.add_all(Target(name=f"p-{n:03}", address="a.lan", port=22) for n in range(501))
    document = tmp_path / "target.yaml"
    document.write_text("kind: target\nname: p-500\naddress: b.lan\n")
    stdout, _ = await cli("apply", "--dry-run", "-f", str(document), "-o", "json")
    # Found on the second page: an update of its address, not a create.
    (planned,) = json.loads(stdout)["documents"]
    assert (planned["name"], planned["result"], planned["fields"]) == (
        "p-500",
        "update",
        ["address"],
    )

    # The API runs in this process: its count stops at 2 here.
    monkeypatch.setattr(paging, "TOTAL_CAP", 2)
    job_id = await create_job(http, admin, JOB)
    await plant_runs(app, job_id, [utcnow() - timedelta(minutes=n) for n in range(3)])
    _, stderr = await cli("runs", "--limit", "1")
    assert "2+ runs in all; see more with --offset" in stderr
