"""Closing a run's steps: every step without a final state gets one. Written once, for the
workflow's `close_run_steps` record (activities/run_records.py) and for the run reconciler,
which settles a run whose workflow ended without writing it (services/run_reconciler.py)."""

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.contracts.runs import RunClosing
from opsconductor.text import storable

# One statement for the whole run, so closing a run over 10,000 targets is one history event.
_CLOSE_RUNNING = text(
    """
    UPDATE run_steps SET status = 'cancelled', reason = :reason, finished_at = now()
    WHERE run_id = :run_id AND status IN ('running', 'pending')
    """
)
_FILL_MISSING = text(
    """
    INSERT INTO run_steps (id, run_id, target, step_id, status, reason, stdout, stderr, outputs,
                           attempts, tolerated, started_at, finished_at)
    SELECT gen_random_uuid(), :run_id, pending.target, pending.step_id, :status, :reason,
           '', '', '{}', 0, false, now(), now()
    FROM (
        SELECT snapshot ->> 'name', step_id
        FROM runs, jsonb_array_elements(runs.targets) AS snapshot,
             unnest(CAST(:per_target AS text[])) AS step_id
        WHERE runs.id = :run_id
        UNION ALL
        SELECT '', step_id FROM unnest(CAST(:run_once AS text[])) AS step_id
    ) AS pending (target, step_id)
    ON CONFLICT (run_id, target, step_id) DO NOTHING
    """
)


async def close_steps(session: AsyncSession, closing: RunClosing) -> None:
    """Idempotent: rows already final are left alone by both statements."""
    connection = await session.connection()
    await connection.execute(
        _CLOSE_RUNNING, {"run_id": closing.run_id, "reason": storable(closing.reason)}
    )
    await connection.execute(
        _FILL_MISSING,
        {
            "run_id": closing.run_id,
            "per_target": closing.per_target_step_ids,
            "run_once": closing.run_once_step_ids,
            "status": "cancelled" if closing.cancelled else "skipped",
            "reason": storable(closing.reason) if closing.cancelled else "run_aborted",
        },
    )
