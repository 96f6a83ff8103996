"""the runs list's order as an index: ix_runs_created_at_id

Revision ID: 0017_list_order_indexes
Revises: 0016_password_reset_settings
Create Date: 2026-12-08
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017_list_order_indexes"
down_revision: str | None = "0016_password_reset_settings"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # `GET /runs` orders by (created_at DESC, id DESC): without this index its first page sorts
    # every run, and a cursor page cannot start at its cursor (benchmarks/README.md, fix 13).
    op.create_index("ix_runs_created_at_id", "runs", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_runs_created_at_id", table_name="runs")
