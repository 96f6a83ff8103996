"""What every command shares: plain error messages instead of tracebacks."""

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from pydantic import ValidationError

from opsconductor.embedded.ports import port_is_free
from opsconductor.errors import ConfigurationError

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
