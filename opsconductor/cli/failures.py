"""How the server-side commands (up, api, worker, migrate, check, user, keys, libraries,
schedules reconcile) fail: plain error messages and exit codes instead of tracebacks.

The API's clients (login, apply, run, runs, targets, schedules list...) report errors through
`cli.client.reports_errors` instead.
"""

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.config import Settings
from opsconductor.db import create_engine, create_sessionmaker, unit_of_work
from opsconductor.embedded.ports import port_is_free
from opsconductor.errors import ConfigurationError, InputInvalid, OpsConductorError

P = ParamSpec("P")
R = TypeVar("R")

EXIT_CONFIGURATION = 2


def fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(EXIT_CONFIGURATION)


def fail_on_configuration_errors(command: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(command)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ConfigurationError as error:
            raise fail(str(error)) from None
        except (OSError, SQLAlchemyError) as error:
            raise fail(f"cannot reach a service: {type(error).__name__}: {error}") from None
        except RuntimeError as error:
            if "connect" not in str(error).lower():
                raise
            raise fail(f"cannot reach Temporal: {error}") from None
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in item['loc']) or 'settings'}: {item['msg']}"
                for item in error.errors()
            )
            raise fail(f"invalid configuration: {problems}") from None

    return guarded


def require_free_port(host: str, port: int, setting: str) -> None:
    if not port_is_free(host, port):
        raise ConfigurationError(
            f"port {port} on {host} is already in use (set {setting} to use another port, "
            "or stop what is listening there)"
        )


def run_in_database(work: Callable[[AsyncSession], Awaitable[str]]) -> None:
    """Runs one unit of work straight on the database and prints what it answers."""
    settings = Settings()

    async def main() -> str:
        engine = create_engine(settings)
        try:
            async with unit_of_work(create_sessionmaker(engine)) as session:
                return await work(session)
        finally:
            await engine.dispose()

    try:
        typer.echo(asyncio.run(main()))
    except OpsConductorError as error:
        problems = error.problems if isinstance(error, InputInvalid) else []
        lines = [error.detail, *(f"  {item.path}: {item.message}" for item in problems)]
        raise fail("\n".join(lines)) from None
