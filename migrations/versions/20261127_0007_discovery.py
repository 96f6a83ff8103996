"""discovery: nmap scans and the hosts they found

Revision ID: 0007
Revises: 0008
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported: a migration must keep meaning what it meant when written.
SCAN_STATUSES = "'queued', 'running', 'succeeded', 'failed', 'cancelled'"


def upgrade() -> None:
    op.create_table(
        "discovery_scans",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("options", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("workflow_id", sa.String(length=128), nullable=True),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("progress_task", sa.String(length=64), nullable=True),
        sa.Column("progress_percent", sa.Float(), nullable=True),
        sa.Column("hosts_found", sa.Integer(), nullable=False),
        sa.Column("notes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_discovery_scans_run_id_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discovery_scans")),
        sa.CheckConstraint(f"status IN ({SCAN_STATUSES})", name=op.f("ck_discovery_scans_status")),
    )
    op.create_index(op.f("ix_discovery_scans_status"), "discovery_scans", ["status"], unique=False)
    op.create_index(op.f("ix_discovery_scans_run_id"), "discovery_scans", ["run_id"], unique=False)
    op.create_index(
        "ix_discovery_scans_created_at", "discovery_scans", ["created_at"], unique=False
    )
    op.create_table(
        "discovery_hosts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("scan_id", sa.Uuid(), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=True),
        sa.Column("os_guess", sa.String(length=255), nullable=True),
        sa.Column("os_family", sa.String(length=64), nullable=True),
        sa.Column("open_ports", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["scan_id"],
            ["discovery_scans.id"],
            name=op.f("fk_discovery_hosts_scan_id_discovery_scans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discovery_hosts")),
        sa.UniqueConstraint("scan_id", "address", name=op.f("uq_discovery_hosts_scan_id")),
    )
    op.create_index(
        op.f("ix_discovery_hosts_scan_id"), "discovery_hosts", ["scan_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_discovery_hosts_scan_id"), table_name="discovery_hosts")
    op.drop_table("discovery_hosts")
    op.drop_index("ix_discovery_scans_created_at", table_name="discovery_scans")
    op.drop_index(op.f("ix_discovery_scans_run_id"), table_name="discovery_scans")
    op.drop_index(op.f("ix_discovery_scans_status"), table_name="discovery_scans")
    op.drop_table("discovery_scans")
