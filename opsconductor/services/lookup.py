"""Reading one row by id, or answering 404 naming what was asked for."""

import uuid
from typing import Any, TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.errors import NotFound

Row = TypeVar("Row")


async def get_or_404(
    session: AsyncSession, table: type[Row], row_id: uuid.UUID, noun: str, **options: Any
) -> Row:
    """The row of `table` with `row_id`; `noun` names it in the 404 ("no target <id>").
    `options` go to `session.get` (e.g. `with_for_update=True`)."""
    row = await session.get(table, row_id, **options)
    if row is None:
        raise NotFound(f"no {noun} {row_id}")
    return row
