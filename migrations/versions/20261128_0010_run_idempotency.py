"""run idempotency keys: runs.idempotency_key, unique per job and user

Revision ID: 0010_run_idempotency
Revises: 0005 (the head: 0006, 0009, 0008, 0007, 0005)
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_run_idempotency"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("idempotency_key", sa.String(length=128), nullable=True))
    op.create_unique_constraint(
        "uq_runs_job_id_triggered_by_idempotency_key",
        "runs",
        ["job_id", "triggered_by", "idempotency_key"],
    )


def downgrade() -> None:
    op.drop_constraint("uq_runs_job_id_triggered_by_idempotency_key", "runs", type_="unique")
    op.drop_column("runs", "idempotency_key")
