"""Counting what an app sends to PostgreSQL: tests assert statement counts, never times."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import event


@contextmanager
def counted_statements(app: FastAPI) -> Iterator[list[str]]:
    """The SQL statements the app's engine sends while the block runs."""
    issued: list[str] = []

    def count(*args: Any) -> None:
        issued.append(args[2])

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield issued
    finally:
        event.remove(engine, "before_cursor_execute", count)
