"""One page of a query, as the list envelope: a bounded total and a keyset cursor.

Counting every matching row costs as much as reading them (100,000 runs: most of a list
request's time, benchmarks/README.md "fix 13"), and so does an `offset` page deep in a list
(PostgreSQL walks and discards the rows before it). So `total` is exact only up to
`TOTAL_CAP` (counted from a `LIMIT TOTAL_CAP + 1` subquery, so PostgreSQL stops there), and each
page answers `next`: an opaque cursor holding the sort key of its last row, from which the next
page starts with a `WHERE (key) after (last)` that the list's index answers directly.

A cursor needs a total order: `paginate` tie-breaks every list of one entity by its primary key
(a list of bare values, e.g. a run's target names, must order by something unique itself)."""

from __future__ import annotations

import base64
import binascii
import enum
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, TypeVarTuple, overload

from sqlalchemy import ColumnElement, and_, false, func, inspect, or_
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.types import TypeDecorator
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import Select, SelectOfScalar

from opsconductor.errors import InputInvalid
from opsconductor.models.page import Page

T = TypeVar("T")
U = TypeVar("U")
Ts = TypeVarTuple("Ts")
# A list of one entity or value (`select(Run)`), or of rows of several (`select(Job, JobVersion)`).
Listing = SelectOfScalar[Any] | Select[*tuple[Any, ...]]

# `total` is exact up to here; past it a list answers `total: TOTAL_CAP, total_capped: true`.
TOTAL_CAP = 10_000
CURSOR_FIELD = "query.cursor"
_BIGINT = 2**63


@dataclass(frozen=True, slots=True)
class PageRequest:
    """What a client asked for: `limit` rows from `offset`, or from after `cursor`."""

    limit: int
    offset: int = 0
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class _SortKey:
    expression: ColumnElement[Any]
    descending: bool
    # The row attribute holding the key's value; None for a list of bare values (the row is it).
    attribute: str | None


def _sort_keys(statement: Listing) -> list[_SortKey]:
    """The statement's ORDER BY, tie-broken by the (first) listed entity's primary key."""
    entity = statement.column_descriptions[0].get("entity")
    mapper = inspect(entity) if entity is not None else None
    keys: list[_SortKey] = []
    for clause in statement._order_by_clauses:
        descending = isinstance(clause, UnaryExpression) and clause.modifier is operators.desc_op
        expression = clause.element if isinstance(clause, UnaryExpression) else clause
        keys.append(_SortKey(expression, descending, _attribute(mapper, expression)))
    if mapper is not None and not any(_unique(key.expression) for key in keys):
        for column in mapper.primary_key:
            if not any(column.compare(key.expression) for key in keys):
                keys.append(_SortKey(column, False, _attribute(mapper, column)))
    return keys


def _unique(expression: ColumnElement[Any]) -> bool:
    return bool(getattr(expression, "unique", False) or getattr(expression, "primary_key", False))


def _attribute(mapper: Any, expression: ColumnElement[Any]) -> str | None:
    if mapper is None:
        return None
    try:
        return str(mapper.get_property_by_column(expression).key)
    except Exception as exc:  # an ORDER BY that is not a column of the listed entity
        raise TypeError(f"a keyset page needs entity columns in ORDER BY: {expression}") from exc


def _key_values(keys: Sequence[_SortKey], row: Any, entities: int) -> list[Any]:
    listed = row[0] if entities > 1 else row  # rows of several entities: keys are the first's
    return [listed if key.attribute is None else getattr(listed, key.attribute) for key in keys]


def _encode(values: Sequence[Any]) -> str:
    tagged: list[list[Any]] = []
    for value in values:
        if isinstance(value, enum.Enum):
            value = value.value
        if value is None:
            tagged.append(["n", None])
        elif isinstance(value, datetime):
            tagged.append(["t", value.isoformat()])
        elif isinstance(value, uuid.UUID):
            tagged.append(["u", str(value)])
        elif isinstance(value, bool) or not isinstance(value, int | str):
            raise TypeError(f"no cursor encoding for a sort key of type {type(value).__name__}")
        else:
            tagged.append(["i" if isinstance(value, int) else "s", value])
    raw = json.dumps(tagged, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _bad_cursor(message: str = "is not a cursor this list gave out") -> InputInvalid:
    return InputInvalid.at(CURSOR_FIELD, message)


def _decode(cursor: str, keys: Sequence[_SortKey]) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        tagged = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError) as exc:
        raise _bad_cursor() from exc
    if not isinstance(tagged, list) or len(tagged) != len(keys):
        raise _bad_cursor()
    return [_decoded_value(item, key) for item, key in zip(tagged, keys, strict=True)]


def _python_type(expression: ColumnElement[Any]) -> type:
    sql_type = expression.type
    if isinstance(sql_type, TypeDecorator):  # e.g. SQLModel's AutoString, a String underneath
        sql_type = sql_type.impl_instance
    try:
        return sql_type.python_type
    except NotImplementedError:  # an expression of unknown type, e.g. `jsonb ->> 'name'`: text
        return str


def _decoded_value(item: object, key: _SortKey) -> Any:
    """One sort key value, checked against its column so a tampered cursor is a 422, never a
    database error."""
    if not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], str):
        raise _bad_cursor()
    tag, raw = item
    expected = _python_type(key.expression)
    if tag == "n":
        if raw is not None:
            raise _bad_cursor()
        return None
    try:
        if tag == "t" and isinstance(raw, str) and expected is datetime:
            moment = datetime.fromisoformat(raw)
            if (moment.tzinfo is None) == bool(getattr(key.expression.type, "timezone", False)):
                raise _bad_cursor()
            return moment
        if tag == "u" and isinstance(raw, str) and expected is uuid.UUID:
            return uuid.UUID(raw)
        if tag == "i" and type(raw) is int and -_BIGINT <= raw < _BIGINT:
            if expected is int:
                return raw
            if isinstance(expected, type) and issubclass(expected, enum.Enum):
                return expected(raw)
        if tag == "s" and isinstance(raw, str) and "\x00" not in raw:
            raw.encode()  # refuses unpaired surrogates, which PostgreSQL text cannot hold
            if expected is str:
                return raw
            if isinstance(expected, type) and issubclass(expected, enum.Enum):
                return expected(raw)
    except (ValueError, UnicodeEncodeError) as exc:
        raise _bad_cursor() from exc
    raise _bad_cursor()


def _after(keys: Sequence[_SortKey], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows after `values` in the keys' order (PostgreSQL's: NULL sorts last ascending and first
    descending), as `k1 > v1 OR (k1 = v1 AND k2 > v2) OR ...`, with `k1 >= v1` beside it so the
    list's index can start its scan at the cursor."""
    alternatives: list[ColumnElement[bool]] = []
    equal_so_far: list[ColumnElement[bool]] = []
    for key, value in zip(keys, values, strict=True):
        alternatives.append(and_(*equal_so_far, _beyond(key, value)))
        equal_so_far.append(key.expression.is_(None) if value is None else key.expression == value)
    first, first_value = keys[0], values[0]
    condition = or_(*alternatives)
    if len(keys) > 1 and first_value is not None and not _nullable(first.expression):
        if first.descending:
            return and_(first.expression <= first_value, condition)
        return and_(first.expression >= first_value, condition)
    return condition


def _beyond(key: _SortKey, value: Any) -> ColumnElement[bool]:
    expression = key.expression
    if value is None:
        return expression.is_not(None) if key.descending else false()
    beyond: ColumnElement[bool] = expression < value if key.descending else expression > value
    if not key.descending and _nullable(expression):
        return or_(beyond, expression.is_(None))
    return beyond


def _nullable(expression: ColumnElement[Any]) -> bool:
    return bool(getattr(expression, "nullable", True))


@overload
async def paginate(
    session: AsyncSession, statement: SelectOfScalar[T], page: PageRequest
) -> Page[T]: ...
@overload
async def paginate(
    session: AsyncSession, statement: Select[*Ts], page: PageRequest
) -> Page[tuple[*Ts]]: ...
async def paginate(session: AsyncSession, statement: Listing, page: PageRequest) -> Page[Any]:
    if page.cursor is not None and page.offset:
        raise InputInvalid.at(CURSOR_FIELD, "continues a list by itself: give no offset with it")
    keys = _sort_keys(statement)
    statement = statement.order_by(None).order_by(
        *(key.expression.desc() if key.descending else key.expression for key in keys)
    )
    # The cursor is read first: a bad one is refused before any statement is sent.
    after = None if page.cursor is None else _after(keys, _decode(page.cursor, keys))
    counted = select(func.count()).select_from(
        statement.order_by(None).limit(TOTAL_CAP + 1).subquery()
    )
    matching = (await session.exec(counted)).one()
    if after is not None:
        statement = statement.where(after)
    paged: Any = statement.limit(page.limit + 1).offset(page.offset)
    rows: Sequence[Any] = (await session.exec(paged)).all()
    items = list(rows[: page.limit])
    more = len(rows) > page.limit
    return Page(
        items=items,
        total=min(matching, TOTAL_CAP),
        total_capped=matching > TOTAL_CAP,
        limit=page.limit,
        offset=page.offset,
        next=_encode(_key_values(keys, items[-1], len(statement.column_descriptions)))
        if more
        else None,
    )


def with_items(page: Page[T], items: list[U]) -> Page[U]:
    """The same page holding `items` (the page's rows turned into answers)."""
    return Page(
        items=items,
        total=page.total,
        total_capped=page.total_capped,
        limit=page.limit,
        offset=page.offset,
        next=page.next,
    )


async def paginate_as(
    session: AsyncSession,
    statement: SelectOfScalar[T],
    page: PageRequest,
    present: Callable[[AsyncSession, Sequence[T]], Awaitable[list[U]]],
) -> Page[U]:
    """`paginate`, with the page's rows turned into answers in one go (so whatever the
    answers add, e.g. related names, is fetched for the page at once, not row by row)."""
    rows = await paginate(session, statement, page)
    return with_items(rows, await present(session, rows.items))
