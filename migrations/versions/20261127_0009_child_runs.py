"""child runs and target batches: runs.parent_run_id and runs.batch_size

Revision ID: 0009
Revises: 0006
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("parent_run_id", sa.Uuid(), nullable=True))
    op.create_foreign_key("fk_runs_parent_run_id", "runs", "runs", ["parent_run_id"], ["id"])
    op.create_index(op.f("ix_runs_parent_run_id"), "runs", ["parent_run_id"])
    # Runs accepted before batching existed ran with the engine's default batch size.
    op.add_column(
        "runs", sa.Column("batch_size", sa.Integer(), nullable=False, server_default="100")
    )


def downgrade() -> None:
    op.drop_column("runs", "batch_size")
    op.drop_index(op.f("ix_runs_parent_run_id"), table_name="runs")
    op.drop_constraint("fk_runs_parent_run_id", "runs", type_="foreignkey")
    op.drop_column("runs", "parent_run_id")
