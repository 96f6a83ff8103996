"""trigger test events: the delivery log marks events an operator sent as tests

Revision ID: 0015_trigger_tests
Revises: 0014_user_display_name
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_trigger_tests"
down_revision: str | None = "0014_user_display_name"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("trigger_events", sa.Column("test", sa.String(length=8), nullable=True))


def downgrade() -> None:
    op.drop_column("trigger_events", "test")
