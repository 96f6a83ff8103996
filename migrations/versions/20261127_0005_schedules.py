"""schedules: the definitions the Temporal schedules `schedule-<id>` are kept in step with

Revision ID: 0005
Revises: 0007
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported: a migration must keep meaning what it meant when written.
OVERLAP_POLICIES = (
    "'skip', 'buffer_one', 'buffer_all', 'cancel_other', 'terminate_other', 'allow_all'"
)


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("cron", sa.String(length=128), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("parameters", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("targets", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("overlap", sa.String(length=16), nullable=False),
        sa.Column("catchup_window_seconds", sa.Integer(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("note", sa.String(length=2000), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_schedules_job_id_jobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
        sa.CheckConstraint(f"overlap IN ({OVERLAP_POLICIES})", name=op.f("ck_schedules_overlap")),
        sa.CheckConstraint(
            "catchup_window_seconds >= 10", name=op.f("ck_schedules_catchup_window_seconds")
        ),
    )
    op.create_index(op.f("ix_schedules_job_id"), "schedules", ["job_id"], unique=False)
    op.create_index(op.f("ix_schedules_name"), "schedules", ["name"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_schedules_name"), table_name="schedules")
    op.drop_index(op.f("ix_schedules_job_id"), table_name="schedules")
    op.drop_table("schedules")
