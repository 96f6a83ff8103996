"""Counts of runs and steps for /metrics, read from the run records when Prometheus scrapes.

The records are the truth: counting them gives the same numbers from every API replica and
survives restarts, where counters kept in worker processes would be split across replicas and
reset with each. Both queries are one GROUP BY each; a step's action is looked up in its job
version's document, and versions never change, so each is read once per process.
"""

import uuid
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.models.job import JobVersion
from opsconductor.models.run import Run, RunStep

UNKNOWN_ACTION = "unknown"


@dataclass(frozen=True)
class RecordCounts:
    runs: dict[str, int]
    steps: dict[tuple[str, str], int]


@dataclass
class RecordCounter:
    """Remembers the step → action map of every job version it has read."""

    actions: dict[uuid.UUID, dict[str, str]] = field(default_factory=dict)

    async def count(self, session: AsyncSession) -> RecordCounts:
        runs = await session.exec(select(Run.status, func.count()).group_by(col(Run.status)))
        grouped = (
            await session.exec(
                select(col(JobVersion.id), col(RunStep.step_id), col(RunStep.status), func.count())
                .join(Run, col(Run.id) == col(RunStep.run_id))
                .join(
                    JobVersion,
                    (col(JobVersion.job_id) == col(Run.job_id))
                    & (col(JobVersion.version) == col(Run.job_version)),
                )
                .group_by(col(JobVersion.id), col(RunStep.step_id), col(RunStep.status))
            )
        ).all()
        await self._learn(session, {version for version, *_ in grouped})
        steps: Counter[tuple[str, str]] = Counter()
        for version, step_id, status, number in grouped:
            action = self.actions.get(version, {}).get(step_id, UNKNOWN_ACTION)
            steps[(action, str(status))] += number
        return RecordCounts(runs={str(status): number for status, number in runs}, steps=steps)

    async def _learn(self, session: AsyncSession, versions: set[uuid.UUID]) -> None:
        missing = versions - self.actions.keys()
        if not missing:
            return
        rows = await session.exec(
            select(JobVersion.id, JobVersion.document).where(col(JobVersion.id).in_(missing))
        )
        for version, document in rows:
            self.actions[version] = {
                str(step.get("id")): str(step.get("action", UNKNOWN_ACTION))
                for step in document.get("steps", [])
                if isinstance(step, dict)
            }
