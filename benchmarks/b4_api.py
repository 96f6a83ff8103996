"""B4: the list endpoints under 50 concurrent clients, with 10,000 targets and 100,000 runs in
the database (planted in SQL: the inventory and history are setup, not what is measured)."""

from __future__ import annotations

import time

import httpx
from sqlalchemy import text

from benchmarks.fleet import Row, percentile, plant_targets, save_job
from benchmarks.load import Load, closed_loop
from benchmarks.stack import Stack
from opsconductor.db import create_engine

PLANT_RUNS = text(
    """
    INSERT INTO runs (id, job_id, job_name, job_version, status, reason, parameters, targets,
                      triggered_by, workflow_id, batch_size, created_at, started_at, finished_at)
    SELECT gen_random_uuid(), :job_id, 'b4-history', 1,
           (ARRAY['succeeded', 'failed', 'cancelled'])[1 + n % 3], NULL, '{}'::jsonb,
           '[]'::jsonb, 'user:admin', 'run-planted-' || n, 100,
           now() - make_interval(secs => n), now() - make_interval(secs => n),
           now() - make_interval(secs => n) + interval '2 seconds'
    FROM generate_series(1, :count) AS n
    """
)


# The newest planted run is a finished one over every planted target, as a fleet-wide run in
# the history would be: its snapshots are what a list must not drag along.
PLANT_FLEET_RUN = text(
    """
    UPDATE runs SET targets = (
        SELECT jsonb_agg(jsonb_build_object('id', id, 'name', name, 'address', address,
                                            'port', port, 'protocol', protocol, 'tags', tags,
                                            'vars', vars, 'os', os))
        FROM targets WHERE tags ->> 'fleet' = 'b4')
    WHERE workflow_id = 'run-planted-1'
    RETURNING id
    """
)


async def plant_runs(stack: Stack, job_id: str, count: int) -> str:
    """Plants the runs; the fleet-wide run's id."""
    engine = create_engine(stack.settings)
    try:
        async with engine.begin() as connection:
            await connection.execute(PLANT_RUNS, {"job_id": job_id, "count": count})
            fleet_run = (await connection.execute(PLANT_FLEET_RUN)).scalar_one()
        # The state autovacuum leaves a table in soon after a bulk insert (statistics and the
        # visibility map, which lets a count read an index alone); VACUUM runs outside a
        # transaction.
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("VACUUM (ANALYZE) runs"))
            await autocommit.execute(text("VACUUM (ANALYZE) targets"))
    finally:
        await engine.dispose()
    return str(fleet_run)


async def _read_one_run(stack: Stack, run_id: str, reads: int) -> tuple[list[float], int]:
    """`GET /runs/{id}` of the fleet-wide run, one client: latencies and the body's bytes."""
    latencies: list[float] = []
    size = 0
    async with httpx.AsyncClient(timeout=60, headers=stack.headers) as http:
        for _ in range(reads):
            started = time.perf_counter()
            answer = await http.get(stack.api(f"/runs/{run_id}"))
            latencies.append(time.perf_counter() - started)
            answer.raise_for_status()
            size = len(answer.content)
    return latencies, size


async def _cursor_at(stack: Stack, path: str, skipped: int) -> str:
    """The cursor of the page after the first `skipped` rows of `path`, found by following
    `next` from the first page as a client reading the list would."""
    seen = 0
    cursor = None
    async with httpx.AsyncClient(timeout=60, headers=stack.headers) as http:
        while seen < skipped:
            params: dict[str, str] = {"cursor": cursor} if cursor else {}
            answer = await http.get(stack.api(path), params=params)
            answer.raise_for_status()
            page = answer.json()
            seen += len(page["items"])
            cursor = page["next"]
    if cursor is None or seen != skipped:
        raise RuntimeError(f"{path}: no page starts after row {skipped}")
    return str(cursor)


async def _hammer(stack: Stack, path: str, clients: int, requests_per_client: int) -> Load:
    return await closed_loop(stack.api(path), stack.headers, clients, requests_per_client)


async def bench_b4(
    stack: Stack, targets: int, runs: int, clients: int, requests_per_client: int
) -> list[Row]:
    async with httpx.AsyncClient(timeout=60) as http:
        job_id = await save_job(
            http,
            stack,
            {
                "name": "b4-history",
                "steps": [
                    {
                        "id": "noop",
                        "action": "control.sleep",
                        "run_once": True,
                        "with": {"duration": "1s"},
                    }
                ],
            },
        )
    await plant_targets(stack, "b4", targets, 22)
    fleet_run = await plant_runs(stack, job_id, runs)
    rows: list[Row] = []
    await _read_one_run(stack, fleet_run, 2)  # warm-up
    latencies, size = await _read_one_run(stack, fleet_run, 20)
    one_run = f"a run over {targets} targets, one client"
    rows += [
        Row(
            "B4",
            one_run,
            "GET /runs/{id} p50",
            percentile(latencies, 0.5) * 1000,
            unit="ms",
            aim="< 50",
        ),
        Row("B4", one_run, "GET /runs/{id} max", max(latencies) * 1000, unit="ms"),
        Row("B4", one_run, "GET /runs/{id} body", size / 1024, unit="KiB", aim="< 64"),
    ]
    case = f"{targets} targets, {runs} runs, {clients} clients"
    # The same deep page of the tag filter, by offset (PostgreSQL walks the 5,000 rows before it)
    # and by the cursor a client following `next` holds there (it starts at its row).
    deep_cursor = await _cursor_at(stack, "/targets?tag=fleet=b4", 5000)
    paths = {
        "/targets": "/targets",
        "/runs": "/runs",
        "/runs?status=failed": "/runs?status=failed",
        "/targets?tag=fleet=b4&offset=5000": "/targets?tag=fleet=b4&offset=5000",
        "/targets?tag=fleet=b4&cursor=(row 5000)": f"/targets?tag=fleet=b4&cursor={deep_cursor}",
    }
    for shown, path in paths.items():
        await _hammer(stack, path, clients, 2)  # warm-up
        before = stack.cpu_seconds()
        load = await _hammer(stack, path, clients, requests_per_client)
        after = stack.cpu_seconds()
        latencies = load.latencies
        rows += [
            Row("B4", case, f"GET {shown} p50", percentile(latencies, 0.5) * 1000, unit="ms"),
            Row(
                "B4",
                case,
                f"GET {shown} p99",
                percentile(latencies, 0.99) * 1000,
                unit="ms",
                aim="< 100",
            ),
            Row("B4", case, f"GET {shown} req/s", len(latencies) / load.seconds, unit="1/s"),
            *(
                Row(
                    "B4",
                    case,
                    f"GET {shown} {label} CPU per request",
                    (after[process] - before[process]) / len(latencies) * 1000,
                    unit="ms",
                )
                for process, label in (("api", "API"), ("postgres", "PostgreSQL"))
            ),
            # How many of the machine's cores the API and PostgreSQL kept busy together: near
            # the core count, more API processes have nothing to run on.
            Row(
                "B4",
                case,
                f"GET {shown} cores busy (API + PostgreSQL)",
                sum(after[name] - before[name] for name in ("api", "postgres")) / load.seconds,
                unit="cores",
            ),
        ]
        if load.reconnects:
            rows.append(
                Row("B4", case, f"GET {shown} dropped keep-alives", load.reconnects, unit="retried")
            )
    return rows
