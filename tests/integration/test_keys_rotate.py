"""`opsconductor keys rotate`: re-wrapping data keys under a new master key, resumably."""

import asyncio
import base64
import os
import secrets
import shutil
import uuid
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from opsconductor.cli.keys import rotate_keys
from opsconductor.config import Settings
from opsconductor.db import create_engine, create_sessionmaker, unit_of_work
from opsconductor.security.envelope import KeyRing
from opsconductor.security.keys import load_process_keys
from opsconductor.services.sealing import keyring_from
from opsconductor.services.vault import Purpose, reveal
from tests.identity_helpers import Account, execute_sql
from tests.vault_helpers import post_ok

pytestmark = pytest.mark.integration

COUNT = 5


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


async def seed(client: httpx.AsyncClient, admin: Account) -> dict[str, str]:
    """Credential ids and the values sealed in them."""
    sealed: dict[str, str] = {}
    for index in range(COUNT):
        value = f"value-{index}-{secrets.token_hex(4)}"
        answer = await post_ok(
            client,
            "/credentials",
            admin.headers,
            {"name": f"c{index}", "kind": "secret", "secret": {"value": value}},
        )
        sealed[answer["id"]] = value
    return sealed


async def key_ids(settings: Settings) -> list[str]:
    rows = await execute_sql(settings.database_url or "", "SELECT key_id FROM credentials")
    return [row.key_id for row in rows]


async def opened(settings: Settings, keyring: KeyRing, ids: list[str]) -> list[str]:
    engine = create_engine(settings)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            return [
                (
                    await reveal(session, keyring, uuid.UUID(item), Purpose.connection_test("t"))
                ).secret["value"]
                for item in ids
            ]
    finally:
        await engine.dispose()


async def test_rotation_rewraps_in_batches_and_resumes(
    http: httpx.AsyncClient, admin: Account, settings: Settings
) -> None:
    sealed = await seed(http, admin)
    old = load_process_keys(settings)
    rotated_settings = settings.model_copy(
        update={"master_key": SecretStr(new_key()), "master_keys_old": [settings.master_key]}
    )
    keyring = keyring_from(load_process_keys(rotated_settings))
    assert keyring.current_id != keyring_from(old).current_id

    # Before rotating, old rows still open through the retired key.
    assert await opened(settings, keyring, list(sealed)) == list(sealed.values())

    engine = create_engine(settings)
    try:
        sessionmaker = create_sessionmaker(engine)
        # "Interrupted" after two batches of two.
        partial = await rotate_keys(sessionmaker, keyring, batch_size=2, max_batches=2)
        assert (partial.rewrapped, partial.current, partial.unknown) == (4, 4, {})
        assert sorted(await key_ids(settings)).count(keyring.current_id) == 4
        resumed = await rotate_keys(sessionmaker, keyring, batch_size=2)
        assert (resumed.rewrapped, resumed.current) == (1, COUNT)
        again = await rotate_keys(sessionmaker, keyring, batch_size=2)
        assert (again.rewrapped, again.current) == (0, COUNT)
    finally:
        await engine.dispose()

    assert set(await key_ids(settings)) == {keyring.current_id}
    # Without the old key the rotated rows still open: only the wrapping changed.
    only_new = KeyRing(load_process_keys(rotated_settings).master_key)
    assert await opened(settings, only_new, list(sealed)) == list(sealed.values())


async def test_the_cli_command_reports_counts_and_missing_keys(
    http: httpx.AsyncClient, admin: Account, settings: Settings, tmp_path: Path
) -> None:
    sealed = await seed(http, admin)
    assert settings.master_key is not None
    original = settings.master_key.get_secret_value()
    current = new_key()
    executable = shutil.which("opsconductor") or str(Path(".venv/bin/opsconductor").resolve())
    base_env = {
        **os.environ,
        "OPSCONDUCTOR_DATABASE_URL": settings.database_url or "",
        "OPSCONDUCTOR_DATA_DIR": str(tmp_path),
        "OPSCONDUCTOR_ENV": "test",
        "OPSCONDUCTOR_MASTER_KEY": current,
        "OPSCONDUCTOR_SECRET_KEY": "x" * 32,
    }

    async def rotate(**env: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            executable,
            "keys",
            "rotate",
            "--batch-size",
            "2",
            env={**base_env, **env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        return process.returncode or 0, output.decode()

    # Without the old key, nothing can be re-wrapped, and the command says which key is missing.
    code, output = await rotate()
    assert code != 0
    assert "re-wrapped 0 credential(s)" in output
    assert "MASTER_KEYS_OLD" in output

    code, output = await rotate(OPSCONDUCTOR_MASTER_KEYS_OLD=original)
    assert code == 0, output
    assert f"re-wrapped {COUNT} credential(s); {COUNT} now under" in output
    assert original not in output
    assert current not in output
    new_keyring = KeyRing(base64.b64decode(current))
    assert await opened(settings, new_keyring, list(sealed)) == list(sealed.values())
