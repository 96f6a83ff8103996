"""Schedules through the API, executed by the real Temporal dev server's schedules and workers."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func
from sqlalchemy.exc import DBAPIError
from sqlmodel import select
from temporalio.client import Client

from opsconductor.api.app import create_app
from opsconductor.api.background import reconcile
from opsconductor.config import Settings
from opsconductor.db import commit_or_undo, create_engine, create_sessionmaker
from opsconductor.models.schedule import ScheduleCreate
from opsconductor.services import schedules
from opsconductor.temporal.client import connect
from tests.fixtures.http_receiver import HttpReceiver
from tests.identity_helpers import Account, api, assert_problem, execute_sql
from tests.run_helpers import TERMINAL, create_job, notify_job, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]

BERLIN = ZoneInfo("Europe/Berlin")
# Fires once a year: tests that trigger or backfill must not also see fires of its own.
NEVER_SOON = "0 0 1 1 *"


@pytest.fixture
async def temporal(settings: Settings) -> AsyncIterator[Client]:
    """A client of our own (the same codec as the API); every `schedule-*` is gone after the
    test, so no schedule fires into a later test."""
    client = await connect(settings)
    yield client
    async for entry in await client.list_schedules():
        if entry.id.startswith("schedule-"):
            await client.get_schedule_handle(entry.id).delete()


@pytest.fixture
async def job_id(http: httpx.AsyncClient, operator: Account, http_receiver: HttpReceiver) -> str:
    """A job of one webhook to the receiver (see `notify_job`)."""
    return await create_job(http, operator, notify_job(http_receiver))


async def create_schedule(client: httpx.AsyncClient, who: Account, **body: Any) -> dict[str, Any]:
    answer = await client.post(api("/schedules"), json=body, headers=who.headers)
    assert answer.status_code == 201, answer.text
    schedule: dict[str, Any] = answer.json()
    return schedule


async def read(client: httpx.AsyncClient, who: Account, schedule_id: str) -> dict[str, Any]:
    answer = await client.get(api(f"/schedules/{schedule_id}"), headers=who.headers)
    assert answer.status_code == 200, answer.text
    schedule: dict[str, Any] = answer.json()
    return schedule


async def runs_of(client: httpx.AsyncClient, who: Account, job_id: str) -> list[dict[str, Any]]:
    answer = await client.get(api("/runs"), params={"job_id": job_id}, headers=who.headers)
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def wait_for_runs(
    client: httpx.AsyncClient, who: Account, job_id: str, count: int, seconds: float
) -> list[dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        runs = await runs_of(client, who, job_id)
        if len(runs) >= count or asyncio.get_running_loop().time() > deadline:
            return runs
        await asyncio.sleep(0.25)


async def test_trigger_now_starts_a_run_that_names_the_schedule(
    http: httpx.AsyncClient,
    operator: Account,
    viewer: Account,
    http_receiver: HttpReceiver,
    job_id: str,
    temporal: Client,
) -> None:
    schedule = await create_schedule(
        http, operator, job_id=job_id, name="nightly-hook", cron=NEVER_SOON,
        parameters={"level": "warn"},
    )  # fmt: skip
    assert schedule["executor"] == "ok"
    assert len(schedule["next_runs"]) == 5
    assert schedule["recent_runs"] == []

    answer = await http.post(api(f"/schedules/{schedule['id']}/trigger"), headers=operator.headers)
    assert answer.status_code == 202, answer.text

    (listed,) = await wait_for_runs(http, viewer, job_id, 1, 30)
    run = await wait_for(http, viewer, listed["id"], TERMINAL)
    assert run["status"] == "succeeded"
    assert run["triggered_by"] == "schedule:nightly-hook"
    assert run["parameters"] == {"level": "warn"}
    assert run["workflow_id"] == f"run-{run['id']}"
    assert http_receiver.requests[0].json == {"level": "warn", "run": run["id"]}
    (recent,) = (await read(http, viewer, schedule["id"]))["recent_runs"]
    assert recent["run_id"] == run["id"]
    assert recent["status"] == "succeeded"


async def test_a_schedule_fires_on_its_own_and_a_paused_one_does_not(
    http: httpx.AsyncClient,
    operator: Account,
    viewer: Account,
    http_receiver: HttpReceiver,
    temporal: Client,
) -> None:
    """Both fire every minute; the paused one is the control. Waits for the next minute
    boundary (at most a minute), since a cron schedule's finest unit is the minute."""
    firing_job = await create_job(http, operator, notify_job(http_receiver, "firing"))
    paused_job = await create_job(http, operator, notify_job(http_receiver, "paused"))
    await create_schedule(http, operator, job_id=firing_job, name="every-minute", cron="* * * * *")
    paused = await create_schedule(http, operator, job_id=paused_job, name="held", cron="* * * * *")
    answer = await http.post(
        api(f"/schedules/{paused['id']}/pause"),
        json={"note": "maintenance window"},
        headers=operator.headers,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["paused"] is True
    assert answer.json()["note"] == "maintenance window"
    assert answer.json()["next_runs"] == []
    described = await temporal.get_schedule_handle(f"schedule-{paused['id']}").describe()
    assert described.schedule.state.paused is True
    assert described.schedule.state.note == "maintenance window"

    fired = await wait_for_runs(http, viewer, firing_job, 1, 65)
    assert fired, "the every-minute schedule did not fire within 65 s"
    run = await wait_for(http, viewer, fired[0]["id"], TERMINAL)
    assert run["status"] == "succeeded"
    assert run["triggered_by"] == "schedule:every-minute"
    schedule = (await http.get(api("/schedules"), headers=viewer.headers)).json()["items"]
    by_name = {item["name"]: item for item in schedule}
    (recent,) = by_name["every-minute"]["recent_runs"]
    # A fire of the cron, not a trigger: scheduled on the minute.
    scheduled_at = datetime.fromisoformat(recent["scheduled_at"])
    assert (scheduled_at.second, scheduled_at.microsecond) == (0, 0)
    assert recent["run_id"] == run["id"]
    assert by_name["held"]["recent_runs"] == []
    assert await runs_of(http, viewer, paused_job) == []

    resumed = await http.post(api(f"/schedules/{paused['id']}/resume"), headers=operator.headers)
    assert resumed.json()["paused"] is False
    assert len(resumed.json()["next_runs"]) == 5


async def test_backfill_creates_the_runs_of_the_range(
    http: httpx.AsyncClient,
    operator: Account,
    viewer: Account,
    job_id: str,
    temporal: Client,
) -> None:
    # Paused, so no fire of its own joins the backfilled ones; a backfill runs regardless.
    schedule = await create_schedule(
        http, operator, job_id=job_id, name="hourly", cron="0 * * * *", paused=True
    )
    # Both ends on a fire: the range takes its start in and leaves its end out.
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=3)
    answer = await http.post(
        api(f"/schedules/{schedule['id']}/backfill"),
        json={"start": start.isoformat(), "end": end.isoformat()},
        headers=operator.headers,
    )
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    times = [datetime.fromisoformat(moment) for moment in accepted["times"]]
    assert times == [start + timedelta(hours=hour) for hour in range(3)]
    assert accepted["runs"] == 3

    runs = await wait_for_runs(http, viewer, job_id, 3, 60)
    assert len(runs) == 3
    for listed in runs:
        run = await wait_for(http, viewer, listed["id"], TERMINAL)
        assert run["status"] == "succeeded"
        assert run["triggered_by"] == "schedule:hourly"
    recent = (await read(http, viewer, schedule["id"]))["recent_runs"]
    assert sorted(datetime.fromisoformat(item["scheduled_at"]) for item in recent) == times
    assert {item["run_id"] for item in recent} == {run["id"] for run in runs}

    too_long = await http.post(
        api(f"/schedules/{schedule['id']}/backfill"),
        json={"start": (end - timedelta(days=3000)).isoformat(), "end": end.isoformat()},
        headers=operator.headers,
    )
    problem = assert_problem(too_long, 422)
    assert problem["errors"][0]["path"] == "body.end"
    future = await http.post(
        api(f"/schedules/{schedule['id']}/backfill"),
        json={"start": end.isoformat(), "end": (end + timedelta(days=1)).isoformat()},
        headers=operator.headers,
    )
    assert assert_problem(future, 422)["errors"][0]["message"] == "must not be in the future"


def sundays(month: int, count: int) -> list[date]:
    """The next `count` Sundays in the given month, from tomorrow on."""
    found: list[date] = []
    day = datetime.now(UTC).date() + timedelta(days=1)
    while len(found) < count:
        if day.month == month and day.weekday() == 6:
            found.append(day)
        day += timedelta(days=1)
    return found


def exists(moment: datetime) -> bool:
    """False for a wall-clock time the clocks skip over (it does not survive a round trip)."""
    return moment.astimezone(UTC).astimezone(moment.tzinfo).replace(tzinfo=None) == moment.replace(
        tzinfo=None
    )


async def test_next_runs_across_daylight_saving_changes(
    http: httpx.AsyncClient, operator: Account, viewer: Account, job_id: str,
    temporal: Client,
) -> None:  # fmt: skip
    """02:30 in Berlin on Sundays of March and of October. On the last Sunday of March the
    clocks jump from 02:00 to 03:00: that day has no 02:30, so there is no fire. On the last
    Sunday of October 02:30 happens twice: one fire, at the second (CET, UTC+1)."""
    march = await create_schedule(
        http, operator, job_id=job_id, cron="30 2 * mar sun", timezone="Europe/Berlin"
    )
    october = await create_schedule(
        http, operator, job_id=job_id, cron="30 2 * 10 0", timezone="Europe/Berlin"
    )

    candidates = [datetime(d.year, d.month, d.day, 2, 30, tzinfo=BERLIN) for d in sundays(3, 10)]
    expected = [moment.astimezone(UTC) for moment in candidates if exists(moment)][:5]
    got = [datetime.fromisoformat(moment) for moment in march["next_runs"]]
    assert got == expected
    # Each year's last Sunday of March is the one missing.
    assert all(moment.astimezone(BERLIN).day + 7 <= 31 for moment in got)
    assert {moment.astimezone(BERLIN).utcoffset() for moment in got} == {timedelta(hours=1)}

    octobers = sundays(10, 5)
    expected = [
        datetime(d.year, d.month, d.day, 2, 30, tzinfo=BERLIN, fold=1).astimezone(UTC)
        for d in octobers
    ]
    got = [datetime.fromisoformat(moment) for moment in october["next_runs"]]
    assert got == expected
    last_sunday = [d for d in octobers if d.day + 7 > 31]
    assert last_sunday, "five Sundays of one October include its last"
    for moment in got:
        local = moment.astimezone(BERLIN)
        assert (local.hour, local.minute) == (2, 30)
        offset = timedelta(hours=1) if local.date() in last_sunday else timedelta(hours=2)
        assert local.utcoffset() == offset


async def test_mistakes_are_422_naming_the_field(
    http: httpx.AsyncClient, operator: Account, job_id: str, temporal: Client
) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"cron": "61 * * * *"}, "body.cron", "minute field: 61 is out of range 0-59"),
        ({"cron": "@reboot"}, "body.cron", "unknown alias"),
        ({"timezone": "Mars/Olympus_Mons"}, "body.timezone", "is not an IANA time zone"),
        ({"parameters": {"level": "loud"}}, "body.parameters.level", "must be one of"),
        ({"parameters": {"colour": "red"}}, "body.parameters.colour", "not a parameter"),
        ({"job_id": str(uuid.uuid4())}, "body.job_id", "no such job"),
        ({"catchup_window": "1s"}, "body.catchup_window", "between 10s and 365d"),
        ({"overlap": "sometimes"}, "body.overlap", ""),
    ]
    for change, path, message in cases:
        body = {"job_id": job_id, "cron": "@daily", **change}
        answer = await http.post(api("/schedules"), json=body, headers=operator.headers)
        problem = assert_problem(answer, 422)
        (error,) = problem["errors"]
        assert error["path"] == path, (change, problem)
        assert message in error["message"], (change, problem)
    schedule = await create_schedule(http, operator, job_id=job_id, cron="@daily")
    answer = await http.patch(
        api(f"/schedules/{schedule['id']}"),
        json={"timezone": "Europe/Atlantis", "cron": None},
        headers=operator.headers,
    )
    problem = assert_problem(answer, 422)
    assert {error["path"] for error in problem["errors"]} == {"body.timezone"}
    listed = (await http.get(api("/schedules"), headers=operator.headers)).json()
    assert listed["total"] == 1


async def test_changes_reach_temporal_and_viewers_may_only_read(
    http: httpx.AsyncClient,
    operator: Account,
    viewer: Account,
    job_id: str,
    temporal: Client,
) -> None:
    schedule = await create_schedule(http, operator, job_id=job_id, cron="@daily")
    assert schedule["name"].startswith("ping-hook-")
    handle = temporal.get_schedule_handle(f"schedule-{schedule['id']}")

    answer = await http.patch(
        api(f"/schedules/{schedule['id']}"),
        json={"cron": "15 6 * * 1-5", "timezone": "America/New_York", "overlap": "buffer_one"},
        headers=operator.headers,
    )
    assert answer.status_code == 200, answer.text
    changed = answer.json()
    assert changed["cron"] == "15 6 * * 1-5"
    for moment in changed["next_runs"]:
        local = datetime.fromisoformat(moment).astimezone(ZoneInfo("America/New_York"))
        assert (local.hour, local.minute) == (6, 15)
        assert local.weekday() < 5
    described = await handle.describe()
    assert described.schedule.spec.time_zone_name == "America/New_York"
    assert described.schedule.policy.overlap.name == "BUFFER_ONE"

    refused = await http.post(
        api("/schedules"), json={"job_id": job_id, "cron": "@daily"}, headers=viewer.headers
    )
    assert_problem(refused, 403)
    assert (await read(http, viewer, schedule["id"]))["cron"] == "15 6 * * 1-5"

    deleted = await http.delete(api(f"/schedules/{schedule['id']}"), headers=operator.headers)
    assert deleted.status_code == 204
    with pytest.raises(Exception, match="not found"):
        await handle.describe()


async def test_deleting_the_job_deletes_its_schedules(
    http: httpx.AsyncClient, operator: Account, job_id: str, temporal: Client
) -> None:
    schedule = await create_schedule(http, operator, job_id=job_id, cron="@daily")
    answer = await http.delete(api(f"/jobs/{job_id}"), headers=operator.headers)
    assert answer.status_code == 204
    gone = await http.get(api(f"/schedules/{schedule['id']}"), headers=operator.headers)
    assert_problem(gone, 404)
    with pytest.raises(Exception, match="not found"):
        await temporal.get_schedule_handle(f"schedule-{schedule['id']}").describe()


async def test_the_reconciler_restores_removes_and_repairs(
    http: httpx.AsyncClient,
    operator: Account,
    job_id: str,
    settings: Settings,
    temporal: Client,
) -> None:
    kept = await create_schedule(http, operator, job_id=job_id, name="kept", cron="@hourly")
    edited = await create_schedule(http, operator, job_id=job_id, name="edited", cron="@daily")
    kept_handle = temporal.get_schedule_handle(f"schedule-{kept['id']}")
    edited_handle = temporal.get_schedule_handle(f"schedule-{edited['id']}")
    # Behind our back: one deleted, one paused in Temporal, one that has no row.
    await kept_handle.delete()
    await edited_handle.pause(note="paused from the Temporal UI")
    extra_id = f"schedule-{uuid.uuid4()}"
    definition = (await edited_handle.describe()).schedule
    await temporal.create_schedule(extra_id, definition)
    assert (await read(http, operator, kept["id"]))["executor"] == "missing"
    await wait_until_listed(temporal, extra_id)

    engine = create_engine(settings)
    try:
        report = await reconcile(create_sessionmaker(engine), temporal)
        again = await reconcile(create_sessionmaker(engine), temporal)
    finally:
        await engine.dispose()

    assert report.created == [f"schedule-{kept['id']}"]
    assert report.updated == [f"schedule-{edited['id']}"]
    assert report.deleted == [extra_id]
    assert not again.changed
    assert again.unchanged == 2
    restored = await read(http, operator, kept["id"])
    assert restored["executor"] == "ok"
    assert len(restored["next_runs"]) == 5
    assert (await edited_handle.describe()).schedule.state.paused is False
    with pytest.raises(Exception, match="not found"):
        await temporal.get_schedule_handle(extra_id).describe()


async def wait_until_listed(temporal: Client, schedule_id: str) -> None:
    """Listing goes through Temporal's visibility store, which may lag a moment."""
    for _ in range(100):
        if schedule_id in [entry.id async for entry in await temporal.list_schedules()]:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{schedule_id} never listed")


async def test_the_reconcile_command(
    http: httpx.AsyncClient,
    operator: Account,
    job_id: str,
    settings: Settings,
    temporal: Client,
) -> None:
    schedule = await create_schedule(http, operator, job_id=job_id, cron="@daily")
    await temporal.get_schedule_handle(f"schedule-{schedule['id']}").delete()
    assert settings.master_key is not None
    assert settings.secret_key is not None
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "opsconductor", "schedules", "reconcile",
        env={
            **os.environ,
            "OPSCONDUCTOR_ENV": "test",
            "OPSCONDUCTOR_DATABASE_URL": settings.database_url or "",
            "OPSCONDUCTOR_TEMPORAL_ADDRESS": settings.temporal_address or "",
            "OPSCONDUCTOR_DATA_DIR": str(settings.data_dir),
            "OPSCONDUCTOR_MASTER_KEY": settings.master_key.get_secret_value(),
            "OPSCONDUCTOR_SECRET_KEY": settings.secret_key.get_secret_value(),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()
    assert f"created schedule-{schedule['id']}" in output.decode()
    assert "1 created, 0 updated, 0 deleted, 0 unchanged" in output.decode()
    assert (await read(http, operator, schedule["id"]))["executor"] == "ok"


async def test_a_fire_the_job_no_longer_accepts_is_stored_as_a_failed_run(
    http: httpx.AsyncClient,
    operator: Account,
    viewer: Account,
    http_receiver: HttpReceiver,
    temporal: Client,
) -> None:
    document = notify_job(http_receiver)
    job_id = await create_job(http, operator, document)
    schedule = await create_schedule(
        http, operator, job_id=job_id, name="warner", cron=NEVER_SOON,
        parameters={"level": "warn"},
    )  # fmt: skip
    # A later version of the job no longer knows the level the schedule gives.
    document["parameters"]["level"]["enum"] = ["info"]
    saved = await http.put(api(f"/jobs/{job_id}"), json=document, headers=operator.headers)
    assert saved.status_code == 200, saved.text

    await http.post(api(f"/schedules/{schedule['id']}/trigger"), headers=operator.headers)
    (run,) = await wait_for_runs(http, viewer, job_id, 1, 30)
    assert run["status"] == "failed"
    assert run["triggered_by"] == "schedule:warner"
    assert run["job_version"] == 2
    assert "parameters.level: must be one of ['info']" in run["reason"]
    assert http_receiver.requests == []


async def test_a_failed_commit_takes_the_temporal_schedule_back(
    http: httpx.AsyncClient,
    operator: Account,
    job_id: str,
    settings: Settings,
    database_url: str,
    temporal: Client,
) -> None:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            pid = (await session.exec(select(func.pg_backend_pid()))).one()
            change = await schedules.create_schedule(
                session, temporal, ScheduleCreate(job_id=uuid.UUID(job_id), cron="@daily"), "test"
            )
            handle = temporal.get_schedule_handle(f"schedule-{change.schedule.id}")
            assert (await handle.describe()).schedule.spec.time_zone_name == "UTC"
            # The database goes away between the Temporal change and the commit.
            await execute_sql(database_url, "SELECT pg_terminate_backend(:pid)", pid=pid)
            with pytest.raises(DBAPIError):
                await commit_or_undo(session, change.undo)
    finally:
        await engine.dispose()
    with pytest.raises(Exception, match="not found"):
        await handle.describe()
    listed = (await http.get(api("/schedules"), headers=operator.headers)).json()
    assert listed["total"] == 0


async def test_replicas_reconciling_at_once_take_turns(
    http: httpx.AsyncClient,
    operator: Account,
    job_id: str,
    settings: Settings,
    temporal: Client,
) -> None:
    schedule = await create_schedule(http, operator, job_id=job_id, cron="@daily")
    await temporal.get_schedule_handle(f"schedule-{schedule['id']}").delete()
    engines = [create_engine(settings), create_engine(settings)]
    try:
        first, second = await asyncio.gather(
            *(reconcile(create_sessionmaker(engine), temporal) for engine in engines)
        )
    finally:
        for engine in engines:
            await engine.dispose()
    # Under the lock, one pass restores the schedule and the other finds it in place.
    assert sorted([first.created, second.created]) == [[], [f"schedule-{schedule['id']}"]]
    assert first.unchanged + second.unchanged == 1


async def test_the_api_reconciles_when_it_starts(
    http: httpx.AsyncClient,
    operator: Account,
    job_id: str,
    settings: Settings,
    temporal: Client,
) -> None:
    schedule = await create_schedule(http, operator, job_id=job_id, cron="@daily")
    handle = temporal.get_schedule_handle(f"schedule-{schedule['id']}")
    await handle.delete()

    replica = create_app(settings)
    async with replica.router.lifespan_context(replica):
        for _ in range(100):
            if (await read(http, operator, schedule["id"]))["executor"] == "ok":
                break
            await asyncio.sleep(0.1)
    assert (await handle.describe()).schedule.spec.calendars


async def test_a_preview_says_an_expression_in_words_with_the_fires_temporal_computes(
    http: httpx.AsyncClient, operator: Account, viewer: Account, job_id: str, temporal: Client
) -> None:
    """`GET /schedules/preview` computes fires before a schedule exists; they are the ones
    Temporal then reports for the saved schedule, across daylight-saving changes too."""
    cases = [
        ("30 2 * * *", "UTC", "at 02:30 every day"),
        ("30 2 * mar sun", "Europe/Berlin", "at 02:30 on Sunday in March"),
        ("30 2 * 10 0", "Europe/Berlin", "at 02:30 on Sunday in October"),
        (
            "*/15 8-18 1 * mon-fri",
            "America/New_York",
            "every 15 minutes during hours 08 to 18 on day 1 of the month or on Monday to Friday",
        ),
    ]
    for cron, timezone, words in cases:
        answer = await http.get(
            api("/schedules/preview"),
            params={"cron": cron, "timezone": timezone},
            headers=viewer.headers,
        )
        assert answer.status_code == 200, answer.text
        preview = answer.json()
        assert preview["description"] == words
        saved = await create_schedule(http, operator, job_id=job_id, cron=cron, timezone=timezone)
        fires = [datetime.fromisoformat(moment) for moment in preview["next_runs"]]
        assert fires == [datetime.fromisoformat(moment) for moment in saved["next_runs"]], cron
        assert len(fires) == 5

    for query, path in [
        ({"cron": "61 * * * *"}, "query.cron"),
        ({"cron": "@daily", "timezone": "Mars/Olympus_Mons"}, "query.timezone"),
    ]:
        answer = await http.get(api("/schedules/preview"), params=query, headers=viewer.headers)
        assert [error["path"] for error in assert_problem(answer, 422)["errors"]] == [path]


async def test_a_backfill_preview_lists_the_runs_and_starts_none(
    http: httpx.AsyncClient, operator: Account, viewer: Account, job_id: str, temporal: Client
) -> None:
    schedule = await create_schedule(http, operator, job_id=job_id, cron="0 * * * *", paused=True)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=3)
    url = api(f"/schedules/{schedule['id']}/backfill")
    answer = await http.get(
        url, params={"start": start.isoformat(), "end": end.isoformat()}, headers=viewer.headers
    )
    assert answer.status_code == 200, answer.text
    times = [datetime.fromisoformat(moment) for moment in answer.json()["times"]]
    assert times == [start + timedelta(hours=hour) for hour in range(3)]
    assert answer.json()["runs"] == 3
    future = await http.get(
        url,
        params={"start": end.isoformat(), "end": (end + timedelta(days=1)).isoformat()},
        headers=viewer.headers,
    )
    assert [error["path"] for error in assert_problem(future, 422)["errors"]] == ["query.end"]
    assert await runs_of(http, viewer, job_id) == []
