"""notifications: channels (sealed apprise URLs) and the delivery log

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported: a migration must keep meaning what it meant when written.
DELIVERY_EVENTS = "'start', 'success', 'failure', 'approval', 'step', 'test'"
DELIVERY_STATUSES = "'pending', 'delivered', 'failed'"


def upgrade() -> None:
    op.create_table(
        "notification_channels",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=False),
        sa.Column("scheme", sa.String(length=32), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("key_nonce", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_channels")),
    )
    op.create_index(
        op.f("ix_notification_channels_key_id"), "notification_channels", ["key_id"], unique=False
    )
    op.create_index(
        op.f("ix_notification_channels_name"), "notification_channels", ["name"], unique=True
    )
    op.create_table(
        "notification_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=True),
        sa.Column("channel_name", sa.String(length=128), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("step_id", sa.String(length=64), nullable=True),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_notification_deliveries_run_id_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_deliveries")),
        sa.CheckConstraint(
            f"event IN ({DELIVERY_EVENTS})", name=op.f("ck_notification_deliveries_event")
        ),
        sa.CheckConstraint(
            f"status IN ({DELIVERY_STATUSES})", name=op.f("ck_notification_deliveries_status")
        ),
    )
    op.create_index(
        "ix_notification_deliveries_created_at",
        "notification_deliveries",
        ["created_at"],
        unique=False,
    )
    op.create_index(
        "ix_notification_deliveries_channel_id_created_at",
        "notification_deliveries",
        ["channel_id", "created_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_notification_deliveries_run_id"),
        "notification_deliveries",
        ["run_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_notification_deliveries_status"),
        "notification_deliveries",
        ["status"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_notification_deliveries_status"), table_name="notification_deliveries")
    op.drop_index(op.f("ix_notification_deliveries_run_id"), table_name="notification_deliveries")
    op.drop_index(
        "ix_notification_deliveries_channel_id_created_at", table_name="notification_deliveries"
    )
    op.drop_index("ix_notification_deliveries_created_at", table_name="notification_deliveries")
    op.drop_table("notification_deliveries")
    op.drop_index(op.f("ix_notification_channels_name"), table_name="notification_channels")
    op.drop_index(op.f("ix_notification_channels_key_id"), table_name="notification_channels")
    op.drop_table("notification_channels")
