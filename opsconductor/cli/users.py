"""`opsconductor user …`: manage users straight in the database, e.g. to recover a lost admin."""

import getpass
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer
from pydantic import TypeAdapter, ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.cli.failures import fail, fail_on_configuration_errors, run_in_database
from opsconductor.models.audit import Outcome
from opsconductor.models.base import utcnow
from opsconductor.models.user import Password, Role, User, UserCreate
from opsconductor.services import audit, users

app = typer.Typer(no_args_is_help=True, help="Create users, set passwords, disable users.")

CLI_ACTOR = "cli"
T = TypeVar("T")

PasswordOption = Annotated[
    str | None,
    typer.Option(
        help="The password; prompted for (hidden) when omitted. Visible in the process list!"
    ),
]


def _validated(make: Callable[[], T]) -> T:
    """Input mistakes read as such, not as a configuration problem."""
    try:
        return make()
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'password'}: {item['msg']}"
            for item in error.errors()
        )
        raise fail(problems) from None


def _password(given: str | None) -> str:
    if given is not None:
        return given
    # getpass rather than typer.prompt: it never echoes, even when stdin is not a terminal.
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise fail("the passwords do not match")
    return first


def _audit(session: AsyncSession, action: str, user: User, **detail: object) -> None:
    entry = audit.AuditEntry.for_action(
        action, actor_username=CLI_ACTOR, resource_id=str(user.id), detail=detail
    )
    audit.record(session, entry, Outcome.success)


@app.command()
@fail_on_configuration_errors
def create(
    username: str,
    email: Annotated[str, typer.Option(help="The user's e-mail address.")],
    role: Annotated[Role, typer.Option(help="What the user may do.")] = Role.viewer,
    password: PasswordOption = None,
) -> None:
    """Create a user."""
    data = _validated(
        lambda: UserCreate(username=username, email=email, role=role, password=_password(password))
    )

    async def work(session: AsyncSession) -> str:
        user = await users.create_user(session, data)
        _audit(session, "user.create", user, role=user.role)
        return f"created {user.role} {user.username!r}"

    run_in_database(work)


@app.command()
@fail_on_configuration_errors
def passwd(username: str, password: PasswordOption = None) -> None:
    """Set a user's password; their sessions end."""
    secret = _validated(lambda: TypeAdapter(Password).validate_python(_password(password)))

    async def work(session: AsyncSession) -> str:
        user = await users.require_user(session, username)
        await users.set_password(session, user, secret, utcnow())
        _audit(session, "user.update", user, fields=["password"])
        return f"password of {username!r} changed; their sessions have ended"

    run_in_database(work)


@app.command()
@fail_on_configuration_errors
def disable(username: str) -> None:
    """Disable a user: they can no longer sign in, and their sessions and tokens stop working."""

    async def work(session: AsyncSession) -> str:
        user = await users.require_user(session, username)
        await users.disable_user(session, user, utcnow())
        _audit(session, "user.disable", user)
        return f"disabled {username!r}"

    run_in_database(work)
