"""run log lines carry the step's attempt: run_logs.attempt

Revision ID: 0011_log_attempts
Revises: 0010_run_idempotency
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_log_attempts"
down_revision: str | None = "0010_run_idempotency"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Lines written before attempts were recorded cannot be told apart any more; they count
    # as the first attempt's.
    op.add_column(
        "run_logs", sa.Column("attempt", sa.Integer(), nullable=False, server_default="1")
    )


def downgrade() -> None:
    op.drop_column("run_logs", "attempt")
