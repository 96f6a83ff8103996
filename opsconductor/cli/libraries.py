"""`opsconductor libraries …`: install step libraries straight in the database, e.g. the
built-in ones when a deployment is set up (the API offers the same, and more)."""

from pathlib import Path
from typing import Annotated

import typer
import yaml
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.cli.failures import fail, fail_on_configuration_errors, run_in_database
from opsconductor.models.audit import Outcome
from opsconductor.services import audit, libraries

app = typer.Typer(no_args_is_help=True, help="Install, disable and remove step libraries.")

CLI_ACTOR = "cli"


def _audit(session: AsyncSession, action: str, **detail: object) -> None:
    entry = audit.AuditEntry.for_action(action, actor_username=CLI_ACTOR, detail=detail)
    audit.record(session, entry, Outcome.success)


@app.command("install-builtin")
@fail_on_configuration_errors
def install_builtin() -> None:
    """Install the built-in libraries (linux, windows), or upgrade them to this release's."""

    async def work(session: AsyncSession) -> str:
        installed = await libraries.install_builtin(session, CLI_ACTOR)
        _audit(
            session,
            "library.install_builtin",
            installed=[f"{item.name}@{item.version}" for item in installed if item.installed],
        )
        return "\n".join(
            f"{item.name}@{item.version}: "
            + ("installed" if item.installed else "installed already")
            for item in installed
        )

    run_in_database(work)


@app.command()
@fail_on_configuration_errors
def install(
    path: Annotated[Path, typer.Argument(help="A library document, YAML or JSON.")],
) -> None:
    """Install a library, or a new version of an installed one."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise fail(f"cannot read {path}: {error}") from None

    async def work(session: AsyncSession) -> str:
        answer = await libraries.install_or_upgrade(session, raw, CLI_ACTOR)
        label = f"{answer.name}@{answer.version}"
        if not answer.installed:
            return f"{label} is installed already"
        _audit(session, "library.install", name=answer.name, version=answer.version)
        return f"installed {label}"

    run_in_database(work)


LibraryName = Annotated[str, typer.Argument(help="The library's name.")]


def _set_enabled(name: str, enabled: bool) -> None:
    async def work(session: AsyncSession) -> str:
        await libraries.set_enabled(session, name, enabled)
        action = "enable" if enabled else "disable"
        _audit(session, f"library.{action}", name=name)
        return f"{name}: {action}d (saved job versions keep what they pinned)"

    run_in_database(work)


@app.command()
@fail_on_configuration_errors
def disable(name: LibraryName) -> None:
    """Stop new job saves from using a library; saved job versions keep running."""
    _set_enabled(name, False)


@app.command()
@fail_on_configuration_errors
def enable(name: LibraryName) -> None:
    """Let new job saves use a disabled library again."""
    _set_enabled(name, True)


@app.command()
@fail_on_configuration_errors
def remove(name: LibraryName) -> None:
    """Delete a library and its versions; refused while a job's current version uses it."""

    async def work(session: AsyncSession) -> str:
        await libraries.remove(session, name)
        _audit(session, "library.remove", name=name)
        return f"removed {name}"

    run_in_database(work)
