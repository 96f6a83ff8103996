"""A huge run reads in constant size: `GET /runs/{id}` answers counts, not the grid, in the
same number of SQL statements for 5 targets as for 200; `GET /runs/{id}/targets` pages and
filters the grid. Runs are planted in the database (no workers): only the reads are tested."""

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.fixtures.http_receiver import HttpReceiver
from tests.identity_helpers import Account, api, assert_problem
from tests.run_helpers import create_job, notify_job, plant_run
from tests.sql_helpers import counted_statements

pytestmark = pytest.mark.integration


async def test_a_run_answers_counts_in_statements_and_bytes_that_do_not_grow_with_targets(
    app: FastAPI, http: httpx.AsyncClient, operator: Account, viewer: Account,
    http_receiver: HttpReceiver,
) -> None:  # fmt: skip
    job_id = await create_job(http, operator, notify_job(http_receiver))
    small, large = await plant_run(app, job_id, 5), await plant_run(app, job_id, 200)

    answers: dict[str, httpx.Response] = {}
    statements: dict[str, int] = {}
    # Who is asking is looked up on the first read and remembered for the next (for a few
    # seconds): read once first, so both runs' counts are the run's statements alone.
    assert (await http.get(api(f"/runs/{small}"), headers=viewer.headers)).status_code == 200
    for run_id in (small, large):
        with counted_statements(app) as issued:
            answers[run_id] = await http.get(api(f"/runs/{run_id}"), headers=viewer.headers)
        assert answers[run_id].status_code == 200, answers[run_id].text
        statements[run_id] = len(issued)
    assert 0 < statements[small] == statements[large], statements
    assert abs(len(answers[small].content) - len(answers[large].content)) < 100

    run = answers[large].json()
    assert run["targets"] is None
    assert list(run["summary"]["by_status"]) == ["pending", "succeeded", "failed"]
    assert [step["id"] for step in run["steps"]] == ["announce"]
    assert run["summary"] == {
        "total": 200,
        "by_status": {"failed": 4, "succeeded": 186, "pending": 10},
        "steps": [
            {"id": "prepare", "by_status": {"succeeded": 190, "pending": 10}},
            {"id": "say", "by_status": {"failed": 5, "succeeded": 185, "pending": 10}},
        ],
    }

    # The whole grid only when asked, by target name, with the statuses the counts count.
    full = await http.get(
        api(f"/runs/{large}"), params={"include": "targets"}, headers=viewer.headers
    )
    assert full.status_code == 200, full.text
    grid = full.json()["targets"]
    assert [target["name"] for target in grid] == [f"t{index:03}" for index in range(200)]
    assert grid[1]["status"] == "succeeded"
    assert [step["id"] for step in grid[0]["steps"]] == ["prepare", "say"]
    assert grid[199] == {"name": "t199", "status": "pending", "steps": []}
    assert len(full.content) > 20 * len(answers[large].content)


async def test_the_grid_pages_by_name_and_filters_by_target_or_step_status(
    app: FastAPI, http: httpx.AsyncClient, operator: Account, viewer: Account,
    http_receiver: HttpReceiver,
) -> None:  # fmt: skip
    run_id = await plant_run(app, await create_job(http, operator, notify_job(http_receiver)), 200)

    async def grid(**params: Any) -> httpx.Response:
        return await http.get(api(f"/runs/{run_id}/targets"), params=params, headers=viewer.headers)

    async def names(**params: Any) -> tuple[list[str], int]:
        answer = await grid(**params)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        return [target["name"] for target in page["items"]], page["total"]

    first = (await grid(limit=3)).json()
    assert (first["total"], first["limit"], first["offset"]) == (200, 3, 0)
    assert [target["name"] for target in first["items"]] == ["t000", "t001", "t002"]
    failed_say = first["items"][0]["steps"][1]
    assert (failed_say["id"], failed_say["status"], failed_say["exit_code"]) == ("say", "failed", 1)

    assert await names(status="failed") == (["t000", "t050", "t100", "t150"], 4)
    assert await names(status="failed", limit=2, offset=2) == (["t100", "t150"], 4)
    assert await names(status="failed", step="say") == (
        ["t000", "t001", "t050", "t100", "t150"], 5,
    )  # fmt: skip
    assert await names(status="pending", step="say", limit=2) == (["t190", "t191"], 10)
    assert await names(status="running") == ([], 0)

    for params, field in (
        ({"status": "exploded"}, "query.status"),
        ({"status": "failed", "step": "Not-A-Step"}, "query.step"),
        ({"step": "say"}, "query.step"),
        ({"limit": 0}, "query.limit"),
    ):
        problem = assert_problem(await grid(**params), 422)
        assert [error["path"] for error in problem["errors"]] == [field], params
    bad_include = await http.get(
        api(f"/runs/{run_id}"), params={"include": "everything"}, headers=viewer.headers
    )
    assert [e["path"] for e in assert_problem(bad_include, 422)["errors"]] == ["query.include"]
    missing = await http.get(api(f"/runs/{uuid.uuid4()}/targets"), headers=viewer.headers)
    assert_problem(missing, 404)
