"""`opsconductor user create | passwd | disable`, run as a real process against the database."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.cli_helpers import run_database_cli
from tests.identity_helpers import ADMIN_PASSWORD, api, assert_problem, bearer, login

pytestmark = pytest.mark.integration


def opsconductor(
    database_url: str, data_dir: Path, *arguments: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return run_database_cli(database_url, data_dir, "user", *arguments, stdin=stdin)


def create(username: str, password: str, role: str = "viewer") -> tuple[str, ...]:
    return (
        "create",
        username,
        "--email",
        f"{username}@example.com",
        "--role",
        role,
        "--password",
        password,
    )


async def test_create_passwd_disable(
    http: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    created = opsconductor(
        database_url, tmp_path, *create("carol", "carol-first-password", "operator")
    )
    assert created.returncode == 0, created.stderr
    assert "created operator 'carol'" in created.stdout
    first = await login(http, "carol", "carol-first-password")
    me = (await http.get(api("/auth/me"), headers=bearer(first["access_token"]))).json()
    assert me["role"] == "operator"

    prompted = "carol-second-password"
    changed = opsconductor(
        database_url, tmp_path, "passwd", "carol", stdin=f"{prompted}\n{prompted}\n"
    )
    assert changed.returncode == 0, changed.stderr
    assert prompted not in changed.stdout + changed.stderr
    # The API process learns of the CLI's change through PostgreSQL's NOTIFY, as soon as its
    # event loop reads it; well before the 5 s its memory of the token would last without.
    for _ in range(30):
        me_again = await http.get(api("/auth/me"), headers=bearer(first["access_token"]))
        if me_again.status_code == 401:
            break
        await asyncio.sleep(0.1)
    assert_problem(me_again, 401)
    await login(http, "carol", prompted)

    disabled = opsconductor(database_url, tmp_path, "disable", "carol")
    assert disabled.returncode == 0, disabled.stderr
    refused = await http.post(api("/auth/login"), json={"username": "carol", "password": prompted})
    assert_problem(refused, 401)

    admin = await login(http, "admin", ADMIN_PASSWORD)
    audit = await http.get(
        api("/audit"), headers=bearer(admin["access_token"]), params={"actor": "cli"}
    )
    actions = [event["action"] for event in audit.json()["items"]]
    assert actions == ["user.disable", "user.update", "user.create"]


async def test_mistakes_are_plain_errors(
    http: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    duplicate = opsconductor(database_url, tmp_path, *create("admin", "x" * 12))
    assert duplicate.returncode != 0
    assert "already exists" in duplicate.stderr

    short = opsconductor(database_url, tmp_path, *create("dave", "short"))
    assert short.returncode != 0
    assert "password" in short.stderr
    assert "Traceback" not in short.stderr

    mismatch = opsconductor(
        database_url, tmp_path, "passwd", "admin", stdin="one-password-a\nanother-one-b\n"
    )
    assert mismatch.returncode != 0
    assert "do not match" in mismatch.stderr

    unknown = opsconductor(database_url, tmp_path, "disable", "nobody")
    assert unknown.returncode != 0
    assert "no user named 'nobody'" in unknown.stderr

    last_admin = opsconductor(database_url, tmp_path, "disable", "admin")
    assert last_admin.returncode != 0
    assert "last enabled admin" in last_admin.stderr
