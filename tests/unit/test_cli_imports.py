"""`opsconductor --help` and client commands import neither the server nor Temporal's SDK nor
asyncssh, nor the libraries a command loads only once it talks to the API or prints a table:
counted in a fresh interpreter, never timed (docs/cli.md has the measured start-up)."""

import json
import subprocess
import sys

import pytest

SERVER_MODULES = ("sqlalchemy", "sqlmodel", "temporalio", "asyncssh", "fastapi", "uvicorn")
# Each costs tens of milliseconds: httpx and rich load when a command sends its first request
# or prints its first table; pydantic came with typer 0.29 (pinned below it); importlib.metadata
# is read only for the version, which only the server prints.
START_UP_MODULES = ("httpx", "rich", "pydantic", "importlib.metadata")
# What `--help` imports today is about 150 modules (the whole server was about 3000); the
# bound leaves room for the standard library's own changes, not for a server import.
MAX_HELP_MODULES = 300

PROBE = """
import json, runpy, sys
sys.argv = ["opsconductor", *json.loads(sys.argv[1])]
try:
    runpy.run_module("opsconductor", run_name="__main__")
except SystemExit:
    pass
sys.stderr.write(json.dumps(sorted(sys.modules)))
"""


def imported_by(*arguments: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(arguments)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    modules: list[str] = json.loads(result.stderr.splitlines()[-1])
    assert "Usage" in result.stdout
    return modules


@pytest.mark.parametrize(
    "arguments",
    [
        ("--help",),
        ("run", "--help"),
        ("run", "start", "--help"),
        ("runs", "--help"),
        ("apply", "--help"),
        ("export", "--help"),
        ("schedules", "list", "--help"),
        ("credentials", "rotate", "--help"),
    ],
)
def test_help_and_client_commands_load_no_server_module(arguments: tuple[str, ...]) -> None:
    modules = imported_by(*arguments)
    loaded = [name for name in (*SERVER_MODULES, *START_UP_MODULES) if name in modules]
    assert loaded == [], f"`opsconductor {' '.join(arguments)}` imported {loaded}"


def test_help_imports_few_modules() -> None:
    assert len(imported_by("--help")) < MAX_HELP_MODULES


def test_a_server_command_still_loads_its_modules() -> None:
    # The lazy entries point at real commands: asking for one's help imports the server.
    assert "fastapi" in imported_by("api", "--help")
