"""How client commands print: tables for people, JSON for scripts, progress on stderr only."""

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from operator import itemgetter
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    # rich is imported when a command first prints a table or a spinner: `--help` and JSON
    # output never need it (tests/unit/test_cli_imports.py).
    from rich.console import Console
    from rich.status import Status


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


OutputOption = Annotated[
    OutputFormat,
    typer.Option("--output", "-o", help="table for people, json for scripts."),
]

Column = tuple[str, Callable[[dict[str, Any]], object]]


def field(key: str, header: str | None = None) -> Column:
    """A column showing one field of the API's answer as it is, headed by its name in capitals
    unless a header is given."""
    return (header or key.upper(), itemgetter(key))


# Piped output is never wrapped, so each row stays one line for grep and awk.
PIPE_WIDTH = 1000


def stdout_console() -> "Console":
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal:
        console = Console(highlight=False, soft_wrap=False, width=PIPE_WIDTH)
    return console


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
    sys.stdout.flush()


def print_json_line(value: Any) -> None:
    sys.stdout.write(json.dumps(value, default=str) + "\n")
    sys.stdout.flush()


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> None:
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE, show_edge=False, header_style="bold")
    for name, _ in columns:
        table.add_column(name)
    for row in rows:
        table.add_row(*(_cell(value(row)) for _, value in columns))
    stdout_console().print(table)


def show(
    value: Any, output: OutputFormat, rows: Sequence[dict[str, Any]], columns: Sequence[Column]
) -> None:
    """JSON prints the API's answer as it is; a table prints the chosen rows and columns."""
    if output is OutputFormat.json:
        print_json(value)
    else:
        print_table(rows, columns)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{key}={item}" for key, item in value.items())
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def short_time(value: object) -> str | None:
    """An ISO timestamp as `YYYY-MM-DD HH:MM:SS` (UTC, as stored)."""
    if not isinstance(value, str):
        return None
    return value.replace("T", " ")[:19]


@contextmanager
def progress(message: str) -> Iterator["Status | None"]:
    """A spinner on stderr while waiting, only when stderr is a terminal: nothing reaches
    stdout, so JSON output and pipes stay clean."""
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    with console.status(message) as status:
        yield status
