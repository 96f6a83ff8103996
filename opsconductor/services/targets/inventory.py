"""Targets themselves: reading, listing, creating, changing and deleting them."""

import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import ScalarSelect, func, or_
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.errors import Conflict, InputInvalid
from opsconductor.models.base import public_view, utcnow
from opsconductor.models.credential import Credential, CredentialKind
from opsconductor.models.page import Page
from opsconductor.models.target import (
    DEFAULT_PORTS,
    Protocol,
    Target,
    TargetCreate,
    TargetGroup,
    TargetGroupMember,
    TargetPublic,
    TargetUpdate,
)
from opsconductor.services.credential_grants import Requester, check_target_credential
from opsconductor.services.lookup import get_or_404
from opsconductor.services.paging import PageRequest, paginate, with_items
from opsconductor.services.targets.groups import set_groups

# Which credential kinds can log in over which protocol.
CREDENTIAL_KINDS_FOR = {
    Protocol.ssh: frozenset({CredentialKind.ssh_key, CredentialKind.ssh_password}),
    Protocol.winrm: frozenset({CredentialKind.winrm}),
}


# -- reading ----------------------------------------------------------------------------------


async def get_target(session: AsyncSession, target_id: uuid.UUID) -> Target:
    return await get_or_404(session, Target, target_id, "target")


async def target_by_name(session: AsyncSession, name: str) -> Target | None:
    return (await session.exec(select(Target).where(Target.name == name))).first()


async def _group_names(
    session: AsyncSession, target_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[str]]:
    rows = await session.exec(
        select(TargetGroupMember.target_id, TargetGroup.name)
        .join(TargetGroup, col(TargetGroup.id) == col(TargetGroupMember.group_id))
        .where(col(TargetGroupMember.target_id).in_(target_ids))
        .order_by(col(TargetGroup.name))
    )
    names: dict[uuid.UUID, list[str]] = {}
    for target_id, name in rows:
        names.setdefault(target_id, []).append(name)
    return names


def _public(target: Target, groups: list[str]) -> TargetPublic:
    return public_view(TargetPublic, target, groups=groups)


async def public(session: AsyncSession, target: Target) -> TargetPublic:
    return _public(target, (await _group_names(session, [target.id])).get(target.id, []))


# A listed target's group names, sorted, as a column of the page's own statement: one round
# trip fewer than asking for the page's names after it (benchmarks/README.md fix 18). The page's
# `total` is counted from the same statement, and PostgreSQL drops a column the count does not
# read, so the names are looked up for the page's rows only. A target in no group has NULL (the
# aggregate of no rows).
_GROUP_NAMES: ScalarSelect[list[str] | None] = (
    select(func.array_agg(aggregate_order_by(col(TargetGroup.name), col(TargetGroup.name))))
    .join(TargetGroupMember, col(TargetGroup.id) == col(TargetGroupMember.group_id))
    .where(col(TargetGroupMember.target_id) == col(Target.id))
    .scalar_subquery()
)
# Built once: statements are immutable (each filter below makes a new one), and building this
# one per request was 3 % of the API's busy samples in `GET /targets` (benchmarks/README.md
# fix 21).
_TARGET_PAGE = select(Target, _GROUP_NAMES).order_by(col(Target.name))


def parse_tag_filters(values: Iterable[str], parameter: str = "tag") -> dict[str, str]:
    tags: dict[str, str] = {}
    for index, value in enumerate(values):
        key, equals, wanted = value.partition("=")
        if not equals or not key:
            raise InputInvalid.at(f"query.{parameter}.{index}", "must look like key=value")
        tags[key] = wanted
    return tags


async def list_targets(
    session: AsyncSession,
    *,
    tags: dict[str, str],
    group: str | None,
    protocol: Protocol | None,
    search: str | None,
    page: PageRequest,
) -> Page[TargetPublic]:
    statement = _TARGET_PAGE
    if tags:
        # JSONB containment: every given tag must match (served by the GIN index).
        statement = statement.where(col(Target.tags).contains(tags))
    if group is not None:
        statement = statement.where(
            col(Target.id).in_(
                select(TargetGroupMember.target_id)
                .join(TargetGroup, col(TargetGroup.id) == col(TargetGroupMember.group_id))
                .where(TargetGroup.name == group)
            )
        )
    if protocol is not None:
        statement = statement.where(Target.protocol == protocol)
    if search:
        pattern = f"%{search.lower()}%"
        statement = statement.where(
            or_(func.lower(Target.name).like(pattern), func.lower(Target.address).like(pattern))
        )
    rows = await paginate(session, statement, page)
    return with_items(rows, [_public(target, groups or []) for target, groups in rows.items])


# -- writing ----------------------------------------------------------------------------------


async def _check_credential(
    session: AsyncSession,
    credential_id: uuid.UUID | None,
    protocol: Protocol,
    pointed_by: Requester | None,
) -> None:
    """The credential fits the protocol and, when a user points the target at it, that user
    may use it (docs/security.md)."""
    if credential_id is None:
        return
    credential = await session.get(Credential, credential_id)
    if credential is None:
        raise InputInvalid.at("body.credential_id", "names no credential", "unknown_credential")
    if credential.kind not in CREDENTIAL_KINDS_FOR[protocol]:
        allowed = " or ".join(sorted(CREDENTIAL_KINDS_FOR[protocol]))
        raise InputInvalid.at(
            "body.credential_id",
            f"is a {credential.kind} credential; {protocol} targets need {allowed}",
        )
    await check_target_credential(session, pointed_by, credential)


async def create_target(session: AsyncSession, data: TargetCreate, requester: Requester) -> Target:
    if await target_by_name(session, data.name) is not None:
        raise Conflict(f"a target named {data.name!r} already exists")
    await _check_credential(session, data.credential_id, data.protocol, requester)
    target = Target.model_validate(
        data,
        update={"id": uuid.uuid4(), "port": data.port or DEFAULT_PORTS[data.protocol]},
    )
    session.add(target)
    await session.flush()
    await set_groups(session, target.id, data.groups)
    await session.flush()
    return target


async def update_target(
    session: AsyncSession, target_id: uuid.UUID, data: TargetUpdate, requester: Requester
) -> Target:
    target = await get_target(session, target_id)
    await apply_update(session, target, data, requester)
    return target


async def apply_update(
    session: AsyncSession, target: Target, data: TargetUpdate, requester: Requester
) -> None:
    """`update_target` on a row already in hand (bulk import updates by name)."""
    changes = data.model_dump(exclude_unset=True, exclude={"groups"})
    for name in ("name", "address", "protocol", "port", "tags", "vars", "description"):
        if name in changes and changes[name] is None:
            raise InputInvalid.at(f"body.{name}", "may not be null")
    renamed = "name" in changes and changes["name"] != target.name
    if renamed and await target_by_name(session, changes["name"]) is not None:
        raise Conflict(f"a target named {changes['name']!r} already exists")
    # A protocol change without a port moves to the new protocol's default port.
    if "protocol" in changes and "port" not in changes and changes["protocol"] != target.protocol:
        changes["port"] = DEFAULT_PORTS[changes["protocol"]]
    # Checked before the row changes: the credential lookup flushes the session, and a row
    # naming an unknown credential would reach PostgreSQL's foreign key as a 500. Grants are
    # checked when the credential is set, not on every other change to the target.
    await _check_credential(
        session,
        changes.get("credential_id", target.credential_id),
        Protocol(changes.get("protocol", target.protocol)),
        requester if "credential_id" in changes else None,
    )
    for name, value in changes.items():
        setattr(target, name, value)
    target.updated_at = utcnow()
    session.add(target)
    if data.groups is not None:
        await set_groups(session, target.id, data.groups)
    await session.flush()


async def delete_target(session: AsyncSession, target_id: uuid.UUID) -> None:
    """Runs keep their own snapshot of the target, so deleting it does not touch history."""
    await session.delete(await get_target(session, target_id))
    await session.flush()
