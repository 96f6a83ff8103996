"""vault and inventory: credentials, their access log, targets and target groups

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported: a migration must keep meaning what it meant when written.
CREDENTIAL_KINDS = "'ssh_key', 'ssh_password', 'winrm', 'http_basic', 'http_bearer', 'secret'"
WINRM_TRANSPORTS = "'ntlm', 'kerberos', 'credssp', 'basic'"
ACCESS_PURPOSES = "'run_step', 'connection_test'"
PROTOCOLS = "'ssh', 'winrm'"


def upgrade() -> None:
    op.create_table(
        "credentials",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("username", sa.String(length=256), nullable=True),
        sa.Column("description", sa.String(length=2000), nullable=False),
        sa.Column("transport", sa.String(length=16), nullable=True),
        sa.Column("verify_tls", sa.Boolean(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("key_nonce", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("public_key_fingerprint", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credentials")),
        sa.CheckConstraint(f"kind IN ({CREDENTIAL_KINDS})", name=op.f("ck_credentials_kind")),
        sa.CheckConstraint(
            f"transport IS NULL OR transport IN ({WINRM_TRANSPORTS})",
            name=op.f("ck_credentials_transport"),
        ),
    )
    op.create_index(op.f("ix_credentials_key_id"), "credentials", ["key_id"], unique=False)
    op.create_index(op.f("ix_credentials_name"), "credentials", ["name"], unique=True)
    op.create_table(
        "credential_access",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("credential_id", sa.Uuid(), nullable=False),
        sa.Column("credential_name", sa.String(length=128), nullable=False),
        sa.Column("purpose", sa.String(length=24), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("step_id", sa.String(length=64), nullable=True),
        sa.Column("target", sa.String(length=128), nullable=True),
        sa.Column("worker_host", sa.String(length=255), nullable=False),
        sa.Column("accessed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credential_access")),
        sa.CheckConstraint(
            f"purpose IN ({ACCESS_PURPOSES})", name=op.f("ck_credential_access_purpose")
        ),
    )
    op.create_index(
        "ix_credential_access_credential_id_at",
        "credential_access",
        ["credential_id", "accessed_at"],
        unique=False,
    )
    op.create_table(
        "target_groups",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_target_groups")),
    )
    op.create_index(op.f("ix_target_groups_name"), "target_groups", ["name"], unique=True)
    op.create_table(
        "targets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("address", sa.String(length=255), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("credential_id", sa.Uuid(), nullable=True),
        sa.Column("os", sa.String(length=64), nullable=True),
        sa.Column("description", sa.String(length=2000), nullable=False),
        sa.Column("tags", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("vars", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("host_key_fingerprint", sa.String(length=128), nullable=True),
        sa.Column("presented_host_key_fingerprint", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["credentials.id"],
            name=op.f("fk_targets_credential_id_credentials"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_targets")),
        sa.CheckConstraint(f"protocol IN ({PROTOCOLS})", name=op.f("ck_targets_protocol")),
        sa.CheckConstraint("port BETWEEN 1 AND 65535", name=op.f("ck_targets_port")),
    )
    op.create_index(op.f("ix_targets_credential_id"), "targets", ["credential_id"], unique=False)
    op.create_index(op.f("ix_targets_name"), "targets", ["name"], unique=True)
    # `tags @> {...}` (the tag filter and selectors) uses it.
    op.create_index("ix_targets_tags", "targets", ["tags"], unique=False, postgresql_using="gin")
    op.create_table(
        "target_group_members",
        sa.Column("target_id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["target_groups.id"],
            name=op.f("fk_target_group_members_group_id_target_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["targets.id"],
            name=op.f("fk_target_group_members_target_id_targets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("target_id", "group_id", name=op.f("pk_target_group_members")),
    )
    op.create_index(
        op.f("ix_target_group_members_group_id"),
        "target_group_members",
        ["group_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_target_group_members_group_id"), table_name="target_group_members")
    op.drop_table("target_group_members")
    op.drop_index("ix_targets_tags", table_name="targets", postgresql_using="gin")
    op.drop_index(op.f("ix_targets_name"), table_name="targets")
    op.drop_index(op.f("ix_targets_credential_id"), table_name="targets")
    op.drop_table("targets")
    op.drop_index(op.f("ix_target_groups_name"), table_name="target_groups")
    op.drop_table("target_groups")
    op.drop_index("ix_credential_access_credential_id_at", table_name="credential_access")
    op.drop_table("credential_access")
    op.drop_index(op.f("ix_credentials_name"), table_name="credentials")
    op.drop_index(op.f("ix_credentials_key_id"), table_name="credentials")
    op.drop_table("credentials")
