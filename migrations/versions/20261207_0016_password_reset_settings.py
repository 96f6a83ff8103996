"""the email channel "forgot password" sends its links through: password_reset_settings

Revision ID: 0016_password_reset_settings
Revises: 0015_trigger_tests
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_password_reset_settings"
down_revision: str | None = "0015_trigger_tests"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One row at most; none means no channel was ever chosen (no e-mailed resets).
    op.create_table(
        "password_reset_settings",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["notification_channels.id"],
            name=op.f("fk_password_reset_settings_channel_id_notification_channels"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_password_reset_settings")),
        sa.CheckConstraint("id = 1", name=op.f("ck_password_reset_settings_one_row")),
    )


def downgrade() -> None:
    op.drop_table("password_reset_settings")
