"""Credential use grants: who may make the worker decrypt a credential (docs/security.md).

Admins may use every credential. Everyone else may use a credential only when it is granted to
them by user, or to their role or a lower one (a grant to `viewer` is a grant to every signed-in
user). A new credential has no grants. The grants of a run's requester (`runs.run_as`) are
checked when a job is saved, when a target is pointed at a credential, when a run starts and on
the worker before each decryption.
"""

import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from sqlalchemy import delete, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.contracts.steps import TargetSnapshot
from opsconductor.errors import FieldProblem, InputInvalid
from opsconductor.jobspec.credentials import credential_uses
from opsconductor.jobspec.document import JobDocument
from opsconductor.models.credential import (
    GRANTABLE_ROLES,
    Credential,
    CredentialGrant,
    GrantsPublic,
    GrantsUpdate,
    UserRef,
)
from opsconductor.models.user import Role, User
from opsconductor.security.rbac import Principal, role_exceeds
from opsconductor.services.lookup import get_or_404

NOT_GRANTED = "credential_not_granted"
NOT_LITERAL = "credential_not_literal"


class NotGranted(InputInvalid):
    """A 403 naming each field whose credential the requester may not use."""

    status = 403
    title = "Permission denied"
    slug = "credential-not-granted"


@dataclass(frozen=True, slots=True)
class Requester:
    """Whose grants apply. `role` None: no such user, or a disabled one; it may use nothing."""

    username: str
    user_id: uuid.UUID | None
    role: Role | None

    @classmethod
    def of(cls, principal: Principal) -> "Requester":
        """The signed-in caller, with the role it acts with (an API token's may be lower)."""
        return cls(principal.user.username, principal.user.id, Role(principal.role))

    @property
    def is_admin(self) -> bool:
        return self.role == Role.admin


async def requester_named(session: AsyncSession, username: str | None) -> Requester:
    """The user a run acts as, with their current role (a demoted user loses what the old
    role held)."""
    user = None
    if username is not None:
        user = (await session.exec(select(User).where(User.username == username))).first()
    if user is None or user.disabled:
        return Requester(username or "nobody", None, None)
    return Requester(user.username, user.id, Role(user.role))


async def usable(
    session: AsyncSession, requester: Requester, credential_ids: Collection[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of the credentials the requester may use."""
    if requester.is_admin:
        return set(credential_ids)
    if requester.role is None or not credential_ids:
        return set()
    role = requester.role
    roles = [grantee for grantee in GRANTABLE_ROLES if not role_exceeds(grantee, role)]
    rows = await session.exec(
        select(CredentialGrant.credential_id).where(
            col(CredentialGrant.credential_id).in_(credential_ids),
            or_(
                col(CredentialGrant.user_id) == requester.user_id,
                col(CredentialGrant.role).in_(roles),
            ),
        )
    )
    return set(rows.all())


def _refusal(requester: Requester, name: str) -> str:
    return f"credential {name!r} is not granted to {requester.username}"


async def document_problems(
    session: AsyncSession, requester: Requester, document: JobDocument
) -> list[FieldProblem]:
    """The places the document names a credential the requester may not use (paths inside the
    document, e.g. `steps.1.credential`). A name no credential has is left to the run: there is
    nothing to take, and the step fails naming it."""
    if requester.is_admin:
        return []
    uses = list(credential_uses(document))
    names = {use.name for use in uses if use.name is not None}
    found = {
        row.name: row.id
        for row in await session.exec(select(Credential).where(col(Credential.name).in_(names)))
    }
    allowed = await usable(session, requester, list(found.values()))
    problems: list[FieldProblem] = []
    for use in uses:
        if use.name is None:
            problems.append(
                FieldProblem(
                    use.path,
                    "names its credential with a template; only admins may, since no check "
                    "can tell which credential it reads (write e.g. secret('db'))",
                    NOT_LITERAL,
                )
            )
        elif use.name in found and found[use.name] not in allowed:
            problems.append(FieldProblem(use.path, _refusal(requester, use.name), NOT_GRANTED))
    return problems


async def check_document(
    session: AsyncSession, requester: Requester, document: JobDocument, prefix: str
) -> None:
    """Refuses (403) a document naming a credential the requester may not use."""
    problems = await document_problems(session, requester, document)
    if problems:
        raise _not_granted(requester, [_prefixed(prefix, item) for item in problems])


async def check_run(
    session: AsyncSession,
    requester: Requester,
    document: JobDocument,
    targets: Iterable[TargetSnapshot],
) -> None:
    """Refuses (403) a run whose requester may not use a credential the job names or one of
    its targets logs in with: a grant revoked after the job was saved stops its next run."""
    problems = [
        _prefixed("job", item) for item in await document_problems(session, requester, document)
    ]
    by_target = {target.name: target.credential_id for target in targets if target.credential_id}
    allowed = await usable(session, requester, set(by_target.values()))
    refused = {
        credential_id for credential_id in by_target.values() if credential_id not in allowed
    }
    if refused:
        names = await _names(session, refused)
        problems += [
            FieldProblem(
                f"targets.{target}.credential_id",
                _refusal(requester, names[credential_id]),
                NOT_GRANTED,
            )
            for target, credential_id in by_target.items()
            if credential_id in refused
        ]
    if problems:
        raise _not_granted(requester, problems)


async def check_target_credential(
    session: AsyncSession, requester: Requester | None, credential: Credential
) -> None:
    """Refuses pointing a target at a credential its editor may not use. None: a change that
    no user asked for directly (none today)."""
    if requester is None or credential.id in await usable(session, requester, [credential.id]):
        return
    raise _not_granted(
        requester,
        [FieldProblem("body.credential_id", _refusal(requester, credential.name), NOT_GRANTED)],
    )


def _prefixed(prefix: str, problem: FieldProblem) -> FieldProblem:
    return FieldProblem(f"{prefix}.{problem.path}", problem.message, problem.type)


def _not_granted(requester: Requester, problems: list[FieldProblem]) -> NotGranted:
    names = ", ".join(problem.path for problem in problems[:10])
    return NotGranted(f"{requester.username} may not use the credentials at: {names}", problems)


async def _names(session: AsyncSession, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
    rows = await session.exec(
        select(Credential.id, Credential.name).where(col(Credential.id).in_(ids))
    )
    return dict(rows.all())


# -- managing grants (admins) -----------------------------------------------------------------


async def grants_of(
    session: AsyncSession, credential_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, GrantsPublic]:
    rows = await session.exec(
        select(CredentialGrant, User.username)
        .join(User, col(User.id) == col(CredentialGrant.user_id), isouter=True)
        .where(col(CredentialGrant.credential_id).in_(credential_ids))
        .order_by(col(User.username), col(CredentialGrant.role))
    )
    grants = {credential_id: GrantsPublic(users=[], roles=[]) for credential_id in credential_ids}
    for grant, username in rows:
        held = grants[grant.credential_id]
        if grant.role is not None:
            held.roles.append(Role(grant.role))
        elif grant.user_id is not None and username is not None:
            held.users.append(UserRef(id=grant.user_id, username=username))
    return grants


async def read_grants(session: AsyncSession, credential_id: uuid.UUID) -> GrantsPublic:
    credential = await get_or_404(session, Credential, credential_id, "credential")
    return (await grants_of(session, [credential.id]))[credential.id]


async def replace_grants(
    session: AsyncSession, credential_id: uuid.UUID, body: GrantsUpdate, actor: str
) -> GrantsPublic:
    """Replaces the credential's grants with the given list."""
    credential = await get_or_404(session, Credential, credential_id, "credential")
    problems = [
        FieldProblem(f"body.roles.{index}", "admins use every credential; grant operator or viewer")
        for index, role in enumerate(body.roles)
        if role not in GRANTABLE_ROLES
    ]
    users = list(dict.fromkeys(body.users))
    known = set((await session.exec(select(User.id).where(col(User.id).in_(users)))).all())
    problems += [
        FieldProblem(f"body.users.{index}", "names no user", "unknown_user")
        for index, user_id in enumerate(body.users)
        if user_id not in known
    ]
    if problems:
        raise InputInvalid("the grants are invalid", problems)
    await session.exec(
        delete(CredentialGrant).where(col(CredentialGrant.credential_id) == credential.id)
    )
    session.add_all(
        [
            *(
                CredentialGrant(credential_id=credential.id, user_id=user_id, granted_by=actor)
                for user_id in users
            ),
            *(
                CredentialGrant(credential_id=credential.id, role=role, granted_by=actor)
                for role in dict.fromkeys(body.roles)
            ),
        ]
    )
    await session.flush()
    return (await grants_of(session, [credential.id]))[credential.id]
