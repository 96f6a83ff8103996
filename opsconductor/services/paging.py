"""One page of a query plus the total count, as the list envelope."""

from typing import TypeVar

from sqlalchemy import func
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from opsconductor.models.page import Page

T = TypeVar("T")


async def paginate(
    session: AsyncSession, statement: SelectOfScalar[T], limit: int, offset: int
) -> Page[T]:
    counted = select(func.count()).select_from(statement.order_by(None).subquery())
    total = (await session.exec(counted)).one()
    items = (await session.exec(statement.limit(limit).offset(offset))).all()
    return Page(items=list(items), total=total, limit=limit, offset=offset)
