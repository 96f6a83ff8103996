"""`opsconductor --help` and client commands import neither the server nor Temporal's SDK nor
asyncssh: counted in a fresh interpreter, never timed."""

import json
import subprocess
import sys

import pytest

SERVER_MODULES = ("sqlalchemy", "sqlmodel", "temporalio", "asyncssh", "fastapi", "uvicorn")
# What `--help` imports today is about 360 modules (the whole server was about 3000); the
# bound leaves room for the standard library's own changes, not for a server import.
MAX_HELP_MODULES = 700

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
        ("runs", "--help"),
        ("apply", "--help"),
        ("export", "--help"),
        ("schedules", "list", "--help"),
        ("credentials", "rotate", "--help"),
    ],
)
def test_help_and_client_commands_load_no_server_module(arguments: tuple[str, ...]) -> None:
    modules = imported_by(*arguments)
    loaded = [name for name in SERVER_MODULES if name in modules]
    assert loaded == [], f"`opsconductor {' '.join(arguments)}` imported {loaded}"


def test_help_imports_few_modules() -> None:
    assert len(imported_by("--help")) < MAX_HELP_MODULES


def test_a_server_command_still_loads_its_modules() -> None:
    # The lazy entries point at real commands: asking for one's help imports the server.
    assert "fastapi" in imported_by("api", "--help")
