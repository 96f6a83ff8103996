"""Counting what an app sends to PostgreSQL: tests assert statement counts, never times."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import event


@contextmanager
def each_statement(app: FastAPI, note: Callable[..., None]) -> Iterator[None]:
    """`note` called with every statement the app's engine sends (SQLAlchemy's
    `before_cursor_execute`: connection, cursor, statement, parameters, context, executemany)."""
    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", note)


@contextmanager
def counted_statements(app: FastAPI) -> Iterator[list[str]]:
    """The SQL statements the app's engine sends while the block runs."""
    issued: list[str] = []

    def count(*args: Any) -> None:
        issued.append(args[2])

    with each_statement(app, count):
        yield issued
