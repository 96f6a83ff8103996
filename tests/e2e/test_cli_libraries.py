"""`opsconductor libraries install-builtin | install`, run as real processes on the database."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml

from tests.cli_helpers import run_database_cli
from tests.identity_helpers import ADMIN_PASSWORD, api, bearer, login
from tests.library_helpers import tools_library

pytestmark = pytest.mark.integration


async def test_install_the_builtin_libraries_and_a_library_file(
    http: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    headers = bearer((await login(http, "admin", ADMIN_PASSWORD))["access_token"])
    first = run_database_cli(database_url, tmp_path, "libraries", "install-builtin")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["linux@1.0.0: installed", "windows@1.0.0: installed"]
    again = run_database_cli(database_url, tmp_path, "libraries", "install-builtin")
    assert again.stdout.splitlines() == [
        "linux@1.0.0: installed already",
        "windows@1.0.0: installed already",
    ]
    listed = (await http.get(api("/libraries"), headers=headers)).json()
    assert [item["name"] for item in listed["items"]] == ["linux", "windows"]

    broken = tools_library()
    broken["steps"]["greet"]["body"][0]["action"] = "ssh.teleport"
    path = tmp_path / "tools.yaml"
    path.write_text(yaml.safe_dump(broken))
    refused = run_database_cli(database_url, tmp_path, "libraries", "install", str(path))
    assert refused.returncode == 2
    assert "steps.greet.body.0.action: unknown action 'ssh.teleport'" in refused.stderr

    path.write_text(yaml.safe_dump(tools_library()))
    installed = run_database_cli(database_url, tmp_path, "libraries", "install", str(path))
    assert installed.stdout.strip() == "installed tools@1.0.0", installed.stderr
    path.write_text(yaml.safe_dump(tools_library("1.1.0")))
    upgraded = run_database_cli(database_url, tmp_path, "libraries", "install", str(path))
    assert upgraded.stdout.strip() == "installed tools@1.1.0", upgraded.stderr
    library = (await http.get(api("/libraries/tools"), headers=headers)).json()
    assert library["latest_version"] == "1.1.0"
    events = (
        await http.get(api("/audit"), params={"action": "library.install"}, headers=headers)
    ).json()
    assert [item["actor_username"] for item in events["items"]] == ["cli", "cli"]

    disabled = run_database_cli(database_url, tmp_path, "libraries", "disable", "tools")
    assert disabled.returncode == 0, disabled.stderr
    assert (await http.get(api("/libraries/tools"), headers=headers)).json()["enabled"] is False
    enabled = run_database_cli(database_url, tmp_path, "libraries", "enable", "tools")
    assert enabled.returncode == 0, enabled.stderr
    removed = run_database_cli(database_url, tmp_path, "libraries", "remove", "tools")
    assert removed.stdout.strip() == "removed tools", removed.stderr
    gone = await http.get(api("/libraries/tools"), headers=headers)
    assert gone.status_code == 404
    missing = run_database_cli(database_url, tmp_path, "libraries", "remove", "tools")
    assert missing.returncode != 0
    assert "tools" in missing.stderr
