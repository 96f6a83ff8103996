"""Credentials: secret material sealed with envelope encryption, and every decryption logged.

The secret fields are write-only: the API accepts them on create and rotate and never answers
with them (`has_secret` and, for SSH keys, the public key fingerprint say what is stored).
"""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import DateTime, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from opsconductor.models.base import SealedColumns, id_field, timestamp_field, utcnow
from opsconductor.models.user import Role

CREDENTIAL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class CredentialKind(StrEnum):
    # Kind names, not secrets (the S105 hints below are about the words only).
    ssh_key = "ssh_key"
    ssh_password = "ssh_password"  # noqa: S105
    winrm = "winrm"
    http_basic = "http_basic"
    http_bearer = "http_bearer"
    secret = "secret"  # noqa: S105


class WinrmTransport(StrEnum):
    ntlm = "ntlm"
    kerberos = "kerberos"
    credssp = "credssp"
    basic = "basic"


class AccessPurpose(StrEnum):
    run_step = "run_step"
    connection_test = "connection_test"


class AccessOutcome(StrEnum):
    revealed = "revealed"
    # The run's requester holds no grant: nothing was decrypted.
    refused = "refused"


# Roles a credential may be granted to; admins use every credential without a grant.
GRANTABLE_ROLES = (Role.operator, Role.viewer)


# -- tables ---------------------------------------------------------------------------------------


class CredentialBase(SQLModel):
    name: str = Field(max_length=128, schema_extra={"pattern": CREDENTIAL_NAME_PATTERN})
    username: str | None = Field(default=None, max_length=256)
    description: str = Field(default="", max_length=2000)
    # WinRM only; None elsewhere.
    transport: WinrmTransport | None = Field(default=None, max_length=16)
    # WinRM only: TLS certificates are checked unless an operator turns it off explicitly.
    verify_tls: bool = True


class Credential(CredentialBase, SealedColumns, table=True):
    """The secret (a JSON object) is sealed in the `SealedColumns`."""

    __tablename__ = "credentials"

    id: uuid.UUID = id_field()
    name: str = Field(max_length=128, unique=True, index=True)
    kind: CredentialKind = Field(sa_type=String(16))
    transport: WinrmTransport | None = Field(default=None, sa_type=String(16))
    public_key_fingerprint: str | None = Field(default=None, max_length=128)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()
    rotated_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class CredentialAccess(SQLModel, table=True):
    """One row per decryption. No foreign key: the trail outlives a deleted credential."""

    __tablename__ = "credential_access"
    __table_args__ = (
        Index("ix_credential_access_credential_id_at", "credential_id", "accessed_at"),
    )

    id: uuid.UUID = id_field()
    credential_id: uuid.UUID
    credential_name: str = Field(max_length=128)
    purpose: AccessPurpose = Field(sa_type=String(24))
    run_id: uuid.UUID | None = None
    step_id: str | None = Field(default=None, max_length=64)
    target: str | None = Field(default=None, max_length=128)
    worker_host: str = Field(max_length=255)
    accessed_at: datetime = Field(
        default_factory=utcnow, sa_type=DateTime(timezone=True), nullable=False
    )
    outcome: AccessOutcome = Field(default=AccessOutcome.revealed, sa_type=String(16))
    # Whose grants the access was checked against (a run's requester); None for a connection
    # test, which a target manager starts on a target already pointed at the credential.
    requester: str | None = Field(default=None, max_length=64)


class CredentialGrant(SQLModel, table=True):
    """Who, besides admins, may use a credential: one user, or everyone of a role or above."""

    __tablename__ = "credential_grants"
    __table_args__ = (
        UniqueConstraint(
            "credential_id", "user_id", name="uq_credential_grants_credential_id_user_id"
        ),
        UniqueConstraint("credential_id", "role", name="uq_credential_grants_credential_id_role"),
    )

    id: uuid.UUID = id_field()
    credential_id: uuid.UUID = Field(foreign_key="credentials.id", ondelete="CASCADE", index=True)
    user_id: uuid.UUID | None = Field(default=None, foreign_key="users.id", ondelete="CASCADE")
    role: Role | None = Field(default=None, sa_type=String(16))
    granted_by: str = Field(max_length=64)
    granted_at: datetime = timestamp_field()


# -- API schemas ----------------------------------------------------------------------------------


class CredentialCreate(CredentialBase):
    kind: CredentialKind
    # Its shape depends on the kind (see services/vault.SECRET_MODELS); validated there so a
    # problem is reported at `body.secret.<field>`.
    secret: dict[str, Any]


class CredentialUpdate(SQLModel):
    """Everything but the secret, which only `rotate` replaces."""

    name: str | None = Field(
        default=None, max_length=128, schema_extra={"pattern": CREDENTIAL_NAME_PATTERN}
    )
    username: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=2000)
    transport: WinrmTransport | None = None
    verify_tls: bool | None = None


class CredentialRotate(SQLModel):
    secret: dict[str, Any]


class TargetRef(SQLModel):
    id: uuid.UUID
    name: str


class UserRef(SQLModel):
    id: uuid.UUID
    username: str


class GrantsPublic(SQLModel):
    """Who may use a credential besides admins."""

    users: list[UserRef]
    roles: list[Role]

    def summary(self) -> str:
        """One line for lists (CLI, console): `user:olivia, role:operator`."""
        grantees = [f"user:{user.username}" for user in self.users]
        grantees += [f"role:{role}" for role in self.roles]
        return ", ".join(grantees) or "admins only"


class GrantsUpdate(SQLModel):
    """The whole list of grants, replacing the previous one."""

    users: list[uuid.UUID] = Field(default_factory=list, max_length=1000)
    roles: list[Role] = Field(default_factory=list, max_length=2)


class CredentialPublic(CredentialBase):
    id: uuid.UUID
    kind: CredentialKind
    has_secret: bool
    public_key_fingerprint: str | None
    created_at: datetime
    updated_at: datetime
    rotated_at: datetime | None
    targets: list[TargetRef]
    grants: GrantsPublic


class CredentialAccessPublic(SQLModel):
    credential_id: uuid.UUID
    credential_name: str
    purpose: AccessPurpose
    run_id: uuid.UUID | None
    step_id: str | None
    target: str | None
    worker_host: str
    accessed_at: datetime
    outcome: AccessOutcome
    requester: str | None
