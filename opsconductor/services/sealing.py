"""Secrets at rest in table rows: the one way a row's secret is sealed, opened and re-wrapped.

A sealed row (credentials, notification channels) holds its secret as `SealedColumns`
(models/base.py): the ciphertext under a fresh data key, and that data key wrapped by the
master key `key_id` (security/envelope.py). Each domain binds its rows to their identity with
its own associated data, so a ciphertext copied onto another row does not open.
"""

import dataclasses
from typing import Any, Protocol, TypeVar

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.models.credential import Credential
from opsconductor.models.notification import NotificationChannel
from opsconductor.models.trigger import Trigger
from opsconductor.security.envelope import KeyRing, Sealed
from opsconductor.security.keys import ProcessKeys


def keyring_from(keys: ProcessKeys) -> KeyRing:
    return KeyRing(keys.master_key, keys.retired_master_keys)


class SealedRow(Protocol):
    """A row holding one sealed secret (the fields of `SealedColumns`)."""

    ciphertext: bytes
    nonce: bytes
    wrapped_key: bytes
    key_nonce: bytes
    key_id: str


def sealed_columns(keyring: KeyRing, plaintext: bytes, associated_data: bytes) -> dict[str, Any]:
    """`plaintext` sealed under a new data key, as `SealedColumns` values: for a new row
    (`Table(..., **sealed_columns(...))`) or to replace a row's secret (`row.sqlmodel_update`)."""
    return dataclasses.asdict(keyring.seal(plaintext, associated_data))


def open_row(row: SealedRow, keyring: KeyRing, associated_data: bytes) -> bytes:
    """The row's secret; raises envelope.DecryptionFailed when it does not open here."""
    return keyring.open(_sealed(row), associated_data)


def _sealed(row: SealedRow) -> Sealed:
    return Sealed(row.ciphertext, row.nonce, row.wrapped_key, row.key_nonce, row.key_id)


# -- master key rotation ----------------------------------------------------------------------

# Every table whose rows hold a secret sealed by the key ring; `keys rotate` re-wraps them all.
SEALED_TABLES: tuple[type[Credential] | type[NotificationChannel] | type[Trigger], ...] = (
    Credential,
    NotificationChannel,
    Trigger,
)
SealedTable = TypeVar("SealedTable", Credential, NotificationChannel, Trigger)


async def _rewrap_rows(
    session: AsyncSession,
    keyring: KeyRing,
    table: type[SealedTable],
    retired: list[str],
    limit: int,
) -> int:
    rows = await session.exec(
        select(table)
        .where(col(table.key_id).in_(retired))
        .order_by(col(table.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    count = 0
    for row in rows:
        # Only the data key is re-wrapped: the ciphertext and its nonce stay as they are.
        row.sqlmodel_update(dataclasses.asdict(keyring.rewrap(_sealed(row))))
        session.add(row)
        count += 1
    return count


async def key_ids_in_use(session: AsyncSession) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in SEALED_TABLES:
        rows = await session.exec(select(table.key_id, func.count()).group_by(col(table.key_id)))
        for key_id, count in rows:
            counts[key_id] = counts.get(key_id, 0) + count
    return counts


async def rewrap_batch(session: AsyncSession, keyring: KeyRing, limit: int) -> int:
    """Re-wraps up to `limit` data keys still under a retired (but configured) master key.

    Rows already under the current key are never selected, so an interrupted rotation simply
    continues; SKIP LOCKED lets two rotations run at once without waiting on each other.
    """
    retired = [
        key_id
        for key_id in await key_ids_in_use(session)
        if key_id != keyring.current_id and keyring.knows(key_id)
    ]
    count = 0
    if retired:
        count = await _rewrap_rows(session, keyring, Credential, retired, limit)
    if retired and count < limit:
        count += await _rewrap_rows(session, keyring, NotificationChannel, retired, limit - count)
    if retired and count < limit:
        count += await _rewrap_rows(session, keyring, Trigger, retired, limit - count)
    await session.flush()
    return count
