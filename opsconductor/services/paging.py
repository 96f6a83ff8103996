"""One page of a query plus the total count, as the list envelope."""

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from sqlalchemy import func
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from opsconductor.models.page import Page

T = TypeVar("T")
U = TypeVar("U")


async def paginate(
    session: AsyncSession, statement: SelectOfScalar[T], limit: int, offset: int
) -> Page[T]:
    counted = select(func.count()).select_from(statement.order_by(None).subquery())
    total = (await session.exec(counted)).one()
    items = (await session.exec(statement.limit(limit).offset(offset))).all()
    return Page(items=list(items), total=total, limit=limit, offset=offset)


async def paginate_as(
    session: AsyncSession,
    statement: SelectOfScalar[T],
    limit: int,
    offset: int,
    present: Callable[[AsyncSession, Sequence[T]], Awaitable[list[U]]],
) -> Page[U]:
    """`paginate`, with the page's rows turned into answers in one go (so whatever the
    answers add, e.g. related names, is fetched for the page at once, not row by row)."""
    page = await paginate(session, statement, limit, offset)
    items = await present(session, page.items)
    return Page(items=items, total=page.total, limit=limit, offset=offset)
