"""event triggers: triggers, their delivery log and the generic source's seen signatures

Revision ID: 0013_triggers
Revises: 0012_credential_grants
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013_triggers"
down_revision: str | None = "0012_credential_grants"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "triggers",
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("key_nonce", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("parameters", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("targets", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("when", sa.String(length=2000), nullable=True),
        sa.Column("dedup_key", sa.String(length=2000), nullable=True),
        sa.Column("dedup_window_seconds", sa.Integer(), nullable=False),
        sa.Column("on_resolved", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("rate_limit", sa.Integer(), nullable=False),
        sa.Column("rate_window_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rate_count", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("run_as", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_triggers_job_id_jobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_triggers")),
    )
    op.create_index(op.f("ix_triggers_job_id"), "triggers", ["job_id"], unique=False)
    op.create_index(op.f("ix_triggers_key_id"), "triggers", ["key_id"], unique=False)
    op.create_index(op.f("ix_triggers_name"), "triggers", ["name"], unique=True)
    op.create_table(
        "trigger_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("trigger_id", sa.Uuid(), nullable=False),
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_address", sa.String(length=64), nullable=True),
        sa.Column("payload_sha256", sa.String(length=64), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["trigger_id"],
            ["triggers.id"],
            name=op.f("fk_trigger_events_trigger_id_triggers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trigger_events")),
    )
    op.create_index(
        "ix_trigger_events_trigger_id_received_at",
        "trigger_events",
        ["trigger_id", "received_at"],
        unique=False,
    )
    op.create_table(
        "trigger_signatures",
        sa.Column("trigger_id", sa.Uuid(), nullable=False),
        sa.Column("signature_sha256", sa.String(length=64), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["trigger_id"],
            ["triggers.id"],
            name=op.f("fk_trigger_signatures_trigger_id_triggers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "trigger_id", "signature_sha256", name=op.f("pk_trigger_signatures")
        ),
    )


def downgrade() -> None:
    op.drop_table("trigger_signatures")
    op.drop_index("ix_trigger_events_trigger_id_received_at", table_name="trigger_events")
    op.drop_table("trigger_events")
    op.drop_index(op.f("ix_triggers_name"), table_name="triggers")
    op.drop_index(op.f("ix_triggers_key_id"), table_name="triggers")
    op.drop_index(op.f("ix_triggers_job_id"), table_name="triggers")
    op.drop_table("triggers")
