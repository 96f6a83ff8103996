"""The `opsconductor` command: run the processes, migrate, and check the stack; and the
clients of a running API (docs/cli.md).

Commands are imported when they run, not before: `--help` and the client commands load
neither the server (FastAPI, SQLAlchemy) nor Temporal's SDK nor asyncssh, so they start at
once (tests/unit/test_cli_imports.py counts what they import).
"""

import importlib
from typing import Any

import typer

# typer vendors its own click; its Context and Command are the ones TyperGroup takes.
from typer._click.core import Command, Context
from typer.core import TyperCommand, TyperGroup


class Lazy:
    """A command or group that lives in `module`: `attribute` is its Typer app, and `command`
    names one command of that app when the entry is a single command."""

    def __init__(self, module: str, attribute: str, help: str, command: str | None = None):
        self.module = module
        self.attribute = attribute
        self.help = help
        self.command = command

    def load(self, name: str) -> Command:
        sub_app = getattr(importlib.import_module(self.module), self.attribute)
        group = typer.main.get_command(sub_app)
        if self.command is not None:
            # An app of one command is that command (typer makes no group of it).
            commands = getattr(group, "commands", {self.command: group})
            found: Command = commands[self.command]
            return found
        group.name = name
        group.help = group.help or self.help
        return group


SERVER = "opsconductor.cli.server"
LAZY: dict[str, Lazy] = {
    # The server and its repair commands.
    "up": Lazy(SERVER, "app", "Start the whole stack on this machine.", "up"),
    "api": Lazy(SERVER, "app", "Run the REST API.", "api"),
    "worker": Lazy(SERVER, "app", "Run a Temporal worker for the chosen task queues.", "worker"),
    "migrate": Lazy(SERVER, "app", "Bring the database schema to the newest migration.", "migrate"),
    "check": Lazy(SERVER, "app", "Ask every task queue to run one activity.", "check"),
    "user": Lazy(
        "opsconductor.cli.users", "app", "Create users, set passwords, disable users (database)."
    ),
    "keys": Lazy("opsconductor.cli.keys", "app", "Manage the vault's master keys."),
    "libraries": Lazy(
        "opsconductor.cli.libraries", "app", "Install, disable and remove step libraries."
    ),
    # Clients of a running API.
    "login": Lazy("opsconductor.cli.login", "app", "Sign in; keep an API token.", "login"),
    "logout": Lazy("opsconductor.cli.login", "app", "Revoke the kept API token.", "logout"),
    "apply": Lazy("opsconductor.cli.apply", "app", "Apply documents in dependency order.", "apply"),
    "export": Lazy("opsconductor.cli.apply", "app", "Export the configuration.", "export"),
    "targets": Lazy("opsconductor.cli.apply", "targets_app", "The inventory: import targets."),
    "run": Lazy("opsconductor.cli.runs", "run_app", "Start, show, cancel or approve a run."),
    "runs": Lazy("opsconductor.cli.runs", "app", "List runs, newest first.", "runs"),
    "schedules": Lazy(
        "opsconductor.cli.schedules", "app", "List, pause, resume and trigger schedules."
    ),
    "triggers": Lazy(
        "opsconductor.cli.triggers", "app", "List triggers and read their delivery logs."
    ),
    "credentials": Lazy(
        "opsconductor.cli.credentials",
        "app",
        "List credentials, rotate a secret, grant and revoke its use.",
    ),
    "groups": Lazy("opsconductor.cli.operations", "groups_app", "Target groups."),
    "discovery": Lazy(
        "opsconductor.cli.operations", "discovery_app", "Scan networks, import what was found."
    ),
    "channels": Lazy("opsconductor.cli.operations", "channels_app", "Notification channels."),
    "tokens": Lazy("opsconductor.cli.operations", "tokens_app", "Your API tokens."),
    "users": Lazy("opsconductor.cli.operations", "users_app", "Users (through the API)."),
}


class LazyGroup(TyperGroup):
    """Lists every command from LAZY's one-line help, and imports a command's module only when
    that command is invoked (or asked for its own --help)."""

    _listing = False

    def list_commands(self, ctx: Context) -> list[str]:
        return list(LAZY)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        entry = LAZY.get(cmd_name)
        if entry is None:
            return None
        if self._listing:
            return TyperCommand(cmd_name, help=entry.help)
        return entry.load(cmd_name)

    def format_help(self, ctx: Context, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    cls=LazyGroup,
    no_args_is_help=True,
    help="OpsConductor: durable automation for operations.",
)


@app.callback()
def main() -> None:
    """OpsConductor: durable automation for operations."""
