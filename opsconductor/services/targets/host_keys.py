"""SSH host-key pinning: trust on first use, refused keys kept for an operator to accept, and
the pinned key read by workers at connection time."""

import uuid

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.errors import Conflict, InputInvalid, NotFound
from opsconductor.models.base import utcnow
from opsconductor.models.target import HostKeyAccept, Target
from opsconductor.services.lookup import get_or_404


async def accept_host_key(
    session: AsyncSession, target_id: uuid.UUID, body: HostKeyAccept
) -> Target:
    target = await get_or_404(session, Target, target_id, "target")
    if body.fingerprint is not None and body.accept_presented:
        raise InputInvalid.at("body", "give either fingerprint or accept_presented, not both")
    if body.fingerprint is not None:
        fingerprint = body.fingerprint
    elif body.accept_presented:
        if target.presented_host_key_fingerprint is None:
            raise Conflict(
                f"no refused host key is on record for {target.name!r}; run a connection test "
                "first, or give the fingerprint"
            )
        fingerprint = target.presented_host_key_fingerprint
    else:
        raise InputInvalid.at("body.fingerprint", "is required unless accept_presented is true")
    target.host_key_fingerprint = fingerprint
    target.presented_host_key_fingerprint = None
    target.updated_at = utcnow()
    session.add(target)
    await session.flush()
    return target


async def pinned_host_key(session: AsyncSession, target_id: uuid.UUID) -> str | None:
    """The pinned fingerprint, read at connection time so an accepted key applies at once."""
    target = await session.get(Target, target_id)
    if target is None:
        # Not get_or_404's wording: a worker reports this mid-run, after the target was chosen.
        raise NotFound(f"target {target_id} is no longer in the inventory")
    return target.host_key_fingerprint


async def pinned_host_keys(
    session: AsyncSession, target_ids: list[uuid.UUID]
) -> dict[uuid.UUID, str | None]:
    """`pinned_host_key` of many targets in one query (a chunk's); a target no longer in the
    inventory is absent from the answer."""
    rows = await session.exec(
        select(Target.id, Target.host_key_fingerprint).where(col(Target.id).in_(target_ids))
    )
    return dict(rows.all())


async def record_host_key(session: AsyncSession, target_id: uuid.UUID, fingerprint: str) -> None:
    """Trust on first use: pins the key only if none is pinned yet (never overwrites one)."""
    await session.exec(
        update(Target)
        .where(col(Target.id) == target_id, col(Target.host_key_fingerprint).is_(None))
        .values(host_key_fingerprint=fingerprint, presented_host_key_fingerprint=None)
    )


async def record_refused_host_key(
    session: AsyncSession, target_id: uuid.UUID, fingerprint: str
) -> None:
    await session.exec(
        update(Target)
        .where(col(Target.id) == target_id)
        .values(presented_host_key_fingerprint=fingerprint)
    )
