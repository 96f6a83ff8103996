"""The credential vault: sealing secrets (API side) and revealing them (worker side only).

Each credential's secret is a JSON object sealed by the key ring (security/envelope.py) under a
fresh data key, with associated data binding it to the row's id and kind, so a ciphertext moved
onto another row does not open. `reveal` is the one function that decrypts; it is called only
by worker activities and writes a `credential_access` row every time.
"""

import json
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncssh
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.db import execute_many
from opsconductor.errors import Conflict, FieldProblem, InputInvalid
from opsconductor.models.base import public_view, utcnow
from opsconductor.models.credential import (
    AccessOutcome,
    AccessPurpose,
    Credential,
    CredentialAccess,
    CredentialCreate,
    CredentialKind,
    CredentialPublic,
    CredentialUpdate,
    GrantsPublic,
    TargetRef,
    WinrmTransport,
)
from opsconductor.models.page import Page
from opsconductor.models.run import Run
from opsconductor.models.target import Target
from opsconductor.security.envelope import DecryptionFailed, KeyRing
from opsconductor.services.credential_grants import grants_of, requester_named, usable
from opsconductor.services.lookup import get_or_404
from opsconductor.services.paging import PageRequest, paginate_as
from opsconductor.services.sealing import open_row, sealed_columns

# -- secret shapes ----------------------------------------------------------------------------


class _Secret(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SshKeySecret(_Secret):
    private_key: str = Field(min_length=1, max_length=64 * 1024)
    passphrase: str | None = Field(default=None, max_length=1024)


class PasswordSecret(_Secret):
    password: str = Field(min_length=1, max_length=4096)


class TokenSecret(_Secret):
    token: str = Field(min_length=1, max_length=16 * 1024)


class ValueSecret(_Secret):
    value: str = Field(min_length=1, max_length=64 * 1024)


SECRET_MODELS: dict[CredentialKind, type[_Secret]] = {
    CredentialKind.ssh_key: SshKeySecret,
    CredentialKind.ssh_password: PasswordSecret,
    CredentialKind.winrm: PasswordSecret,
    CredentialKind.http_basic: PasswordSecret,
    CredentialKind.http_bearer: TokenSecret,
    CredentialKind.secret: ValueSecret,
}
_INSERT_ACCESS = insert(CredentialAccess.__table__)  # type: ignore[attr-defined]
# One credential_access row (every column), as `record_accesses` inserts it.
AccessRow = dict[str, Any]
# Kinds that log in somewhere, and so need the account name.
NEEDS_USERNAME = frozenset(
    {
        CredentialKind.ssh_key,
        CredentialKind.ssh_password,
        CredentialKind.winrm,
        CredentialKind.http_basic,
    }
)


def import_ssh_key(private_key: str, passphrase: str | None) -> asyncssh.SSHKey:
    """The parsed key, or a 422 naming the field at fault. Messages never quote the input."""
    try:
        return asyncssh.import_private_key(private_key, None)
    except asyncssh.KeyImportError as plain_error:
        # The one message that tells an encrypted key (well formed) from an unreadable one.
        encrypted = "passphrase must be specified" in str(plain_error).lower()
    if not encrypted:
        raise InputInvalid.at(
            "body.secret.private_key",
            "is not a private key in a format OpenSSH or PEM (PKCS#1/#8) uses",
        )
    if not passphrase:
        raise InputInvalid.at("body.secret.passphrase", "is required: the private key is encrypted")
    try:
        return asyncssh.import_private_key(private_key, passphrase)
    except asyncssh.KeyImportError:
        raise InputInvalid.at(
            "body.secret.passphrase", "does not decrypt the private key"
        ) from None


def checked_secret(kind: CredentialKind, raw: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The secret validated for its kind, and the public key fingerprint of an SSH key."""
    try:
        secret = SECRET_MODELS[kind].model_validate(raw)
    except ValidationError as error:
        problems = [
            FieldProblem(
                "body.secret." + ".".join(str(part) for part in item["loc"]),
                item["msg"],
                item["type"],
            )
            for item in error.errors()
        ]
        raise InputInvalid(f"the secret of a {kind} credential is invalid", problems) from None
    fingerprint = None
    if isinstance(secret, SshKeySecret):
        key = import_ssh_key(secret.private_key, secret.passphrase)
        fingerprint = key.get_fingerprint("sha256")
    return secret.model_dump(exclude_none=True), fingerprint


def associated_data(credential_id: uuid.UUID, kind: str) -> bytes:
    return f"credential:{credential_id}:{kind}".encode()


def _sealed_secret(
    keyring: KeyRing, credential_id: uuid.UUID, kind: str, secret: dict[str, Any]
) -> dict[str, Any]:
    plaintext = json.dumps(secret).encode()
    return sealed_columns(keyring, plaintext, associated_data(credential_id, kind))


def _checked_options(
    kind: CredentialKind, username: str | None, transport: WinrmTransport | None
) -> WinrmTransport | None:
    if kind in NEEDS_USERNAME and not username:
        raise InputInvalid.at("body.username", f"is required for {kind} credentials")
    if kind is CredentialKind.winrm:
        return transport or WinrmTransport.ntlm
    if transport is not None:
        raise InputInvalid.at("body.transport", "applies to winrm credentials only")
    return None


# -- API side: managing credentials (never decrypts) ------------------------------------------


async def _by_name(session: AsyncSession, name: str) -> Credential | None:
    return (await session.exec(select(Credential).where(Credential.name == name))).first()


async def get_credential(session: AsyncSession, credential_id: uuid.UUID) -> Credential:
    return await get_or_404(session, Credential, credential_id, "credential")


async def find_credential(session: AsyncSession, name: str) -> Credential | None:
    return await _by_name(session, name)


async def _targets_using(
    session: AsyncSession, credential_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[TargetRef]]:
    rows = await session.exec(
        select(Target.credential_id, Target.id, Target.name)
        .where(col(Target.credential_id).in_(credential_ids))
        .order_by(col(Target.name))
    )
    using: dict[uuid.UUID, list[TargetRef]] = {}
    for credential_id, target_id, name in rows:
        assert credential_id is not None
        using.setdefault(credential_id, []).append(TargetRef(id=target_id, name=name))
    return using


def _public(
    credential: Credential, targets: list[TargetRef], grants: GrantsPublic
) -> CredentialPublic:
    return public_view(
        CredentialPublic,
        credential,
        has_secret=bool(credential.ciphertext),
        targets=targets,
        grants=grants,
    )


async def public(session: AsyncSession, credential: Credential) -> CredentialPublic:
    using = await _targets_using(session, [credential.id])
    grants = await grants_of(session, [credential.id])
    return _public(credential, using.get(credential.id, []), grants[credential.id])


async def list_credentials(
    session: AsyncSession, kind: CredentialKind | None, page: PageRequest
) -> Page[CredentialPublic]:
    statement = select(Credential).order_by(col(Credential.name))
    if kind is not None:
        statement = statement.where(Credential.kind == kind)
    return await paginate_as(session, statement, page, _publics)


async def _publics(session: AsyncSession, rows: Sequence[Credential]) -> list[CredentialPublic]:
    ids = [row.id for row in rows]
    using = await _targets_using(session, ids)
    grants = await grants_of(session, ids)
    return [_public(row, using.get(row.id, []), grants[row.id]) for row in rows]


async def create_credential(
    session: AsyncSession, keyring: KeyRing, data: CredentialCreate
) -> Credential:
    transport = _checked_options(data.kind, data.username, data.transport)
    secret, fingerprint = checked_secret(data.kind, data.secret)
    if await _by_name(session, data.name) is not None:
        raise Conflict(f"a credential named {data.name!r} already exists")
    credential_id = uuid.uuid4()
    credential = Credential(
        id=credential_id,
        name=data.name,
        kind=data.kind,
        username=data.username,
        description=data.description,
        transport=transport,
        verify_tls=data.verify_tls,
        public_key_fingerprint=fingerprint,
        **_sealed_secret(keyring, credential_id, data.kind, secret),
    )
    session.add(credential)
    await session.flush()
    return credential


async def update_credential(
    session: AsyncSession, credential_id: uuid.UUID, data: CredentialUpdate
) -> Credential:
    credential = await get_credential(session, credential_id)
    changes = data.model_dump(exclude_unset=True)
    for name in ("name", "verify_tls", "description"):
        if name in changes and changes[name] is None:
            raise InputInvalid.at(f"body.{name}", "may not be null")
    renamed = "name" in changes and changes["name"] != credential.name
    if renamed and await _by_name(session, changes["name"]) is not None:
        raise Conflict(f"a credential named {changes['name']!r} already exists")
    for name, value in changes.items():
        setattr(credential, name, value)
    credential.transport = _checked_options(
        CredentialKind(credential.kind), credential.username, credential.transport
    )
    credential.updated_at = utcnow()
    session.add(credential)
    await session.flush()
    return credential


async def rotate_credential(
    session: AsyncSession, keyring: KeyRing, credential_id: uuid.UUID, raw: dict[str, Any]
) -> Credential:
    """New secret material under a new data key; the id (and every reference to it) stays."""
    credential = await get_credential(session, credential_id)
    secret, fingerprint = checked_secret(CredentialKind(credential.kind), raw)
    credential.sqlmodel_update(_sealed_secret(keyring, credential.id, credential.kind, secret))
    credential.public_key_fingerprint = fingerprint
    credential.rotated_at = credential.updated_at = utcnow()
    session.add(credential)
    await session.flush()
    return credential


async def delete_credential(session: AsyncSession, credential_id: uuid.UUID) -> None:
    credential = await get_credential(session, credential_id)
    users = (await _targets_using(session, [credential.id])).get(credential.id, [])
    if users:
        names = ", ".join(target.name for target in users)
        raise Conflict(
            f"credential {credential.name!r} is used by {len(users)} target(s): {names}",
            targets=[target.name for target in users],
        )
    await session.delete(credential)
    await session.flush()


# -- worker side: the one way a secret is decrypted ------------------------------------------


class CredentialUnavailable(Exception):
    """The credential is gone, of the wrong kind, or cannot be decrypted with the keys here."""


class CredentialRefused(CredentialUnavailable):
    """The run's requester holds no grant for the credential. Carries the access log rows that
    record the refusal (one per target), for the caller to commit apart from the failing unit
    of work."""

    def __init__(self, message: str, accesses: list[AccessRow]):
        super().__init__(message)
        self.accesses = accesses


@dataclass(frozen=True, slots=True)
class Purpose:
    """Why a secret is decrypted; recorded with every access."""

    kind: AccessPurpose
    # The targets the secret is decrypted for: one access row each, so the log answers "was
    # this credential used on host X" also for a chunk's one decryption. Empty: no target.
    targets: tuple[str, ...] = ()
    run_id: uuid.UUID | None = None
    step_id: str | None = None

    @classmethod
    def run_step(cls, run_id: uuid.UUID, step_id: str, targets: Sequence[str]) -> "Purpose":
        return cls(AccessPurpose.run_step, tuple(targets), run_id, step_id)

    @classmethod
    def connection_test(cls, target: str) -> "Purpose":
        return cls(AccessPurpose.connection_test, (target,))


@dataclass(frozen=True, slots=True)
class Revealed:
    """A decrypted credential. repr=False keeps the secret out of tracebacks and logs."""

    id: uuid.UUID
    name: str
    kind: CredentialKind
    username: str | None
    transport: WinrmTransport | None
    verify_tls: bool
    secret: dict[str, str] = field(repr=False)

    def values(self) -> list[str]:
        """Everything to mask in output: each secret value and, for a credential with an
        account name, `username:value` (what a Basic authorization header encodes)."""
        values = [value for value in self.secret.values() if value]
        if self.username:
            values += [f"{self.username}:{value}" for value in values]
        return values


def _accesses(credential: Credential, purpose: Purpose, **fields: Any) -> list[AccessRow]:
    """The access log rows of one decryption (or refusal): one per target it is for, all at
    the same moment. Plain rows, not `CredentialAccess` objects: a chunk's decryption has one
    per target, and a table model costs ~0.2 ms to build (benchmarks/README.md, fix 16)."""
    shared: AccessRow = {
        "credential_id": credential.id,
        "credential_name": credential.name,
        "purpose": purpose.kind,
        "run_id": purpose.run_id,
        "step_id": purpose.step_id,
        "worker_host": socket.gethostname(),
        "accessed_at": utcnow(),
        "outcome": AccessOutcome.revealed,
        "requester": None,
        **fields,
    }
    return [
        {**shared, "id": uuid.uuid4(), "target": target} for target in purpose.targets or (None,)
    ]


async def record_accesses(session: AsyncSession, accesses: list[AccessRow]) -> None:
    """Inserts access rows in one round trip (a chunk's: one row per target)."""
    await execute_many(session, _INSERT_ACCESS, accesses)


async def _check_grant(
    session: AsyncSession, credential: Credential, purpose: Purpose
) -> str | None:
    """For a run's step: the requester (runs.run_as) must still hold a grant, checked here,
    before decryption, as well as when the job was saved and the run started. Answers who the
    requester is."""
    if purpose.run_id is None:
        return None
    # The one column, not the run: its target snapshots (a jsonb list of every target of the
    # run) would be read and decoded by every chunk of a large run.
    run_as = (await session.exec(select(Run.run_as).where(col(Run.id) == purpose.run_id))).first()
    requester = await requester_named(session, run_as)
    if credential.id not in await usable(session, requester, [credential.id]):
        raise CredentialRefused(
            f"credential {credential.name!r} is not granted to {requester.username}, "
            "who this run acts for; nothing was decrypted",
            _accesses(
                credential, purpose, outcome=AccessOutcome.refused, requester=requester.username
            ),
        )
    return requester.username


async def reveal(
    session: AsyncSession, keyring: KeyRing, credential_id: uuid.UUID, purpose: Purpose
) -> Revealed:
    credential = await session.get(Credential, credential_id)
    if credential is None:
        raise CredentialUnavailable(f"credential {credential_id} does not exist")
    requester = await _check_grant(session, credential, purpose)
    try:
        plaintext = open_row(credential, keyring, associated_data(credential.id, credential.kind))
    except DecryptionFailed as error:
        raise CredentialUnavailable(
            f"credential {credential.name!r} cannot be decrypted: {error}"
        ) from None
    await record_accesses(session, _accesses(credential, purpose, requester=requester))
    return Revealed(
        id=credential.id,
        name=credential.name,
        kind=CredentialKind(credential.kind),
        username=credential.username,
        transport=WinrmTransport(credential.transport) if credential.transport else None,
        verify_tls=credential.verify_tls,
        secret=json.loads(plaintext),
    )


async def reveal_named(
    session: AsyncSession, keyring: KeyRing, name: str, purpose: Purpose
) -> Revealed:
    """`reveal` for a credential a job document names (a step's `credential:`, `secret()`)."""
    credential = await find_credential(session, name)
    if credential is None:
        raise CredentialUnavailable(f"no credential named {name!r}")
    return await reveal(session, keyring, credential.id, purpose)
