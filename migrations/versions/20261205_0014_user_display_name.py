"""users have a display name they set themselves: users.display_name

Revision ID: 0014_user_display_name
Revises: 0013_triggers
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_user_display_name"
down_revision: str | None = "0013_triggers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing users have none yet; the console then shows their username.
    op.add_column(
        "users",
        sa.Column("display_name", sa.String(length=128), nullable=False, server_default=""),
    )
    op.alter_column("users", "display_name", server_default=None)


def downgrade() -> None:
    op.drop_column("users", "display_name")
