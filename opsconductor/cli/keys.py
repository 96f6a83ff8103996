"""`opsconductor keys …`: the vault's master keys.

`rotate` re-wraps every credential's data key under the current master key (the ciphertexts
stay as they are). Set the new key as OPSCONDUCTOR_MASTER_KEY and the old one(s) in
OPSCONDUCTOR_MASTER_KEYS_OLD, run it, then drop an old key only once `check-retired` says it can
go: open workflows and schedules sealed under it need it until they end (docs/vault.md).
"""

import asyncio
from dataclasses import dataclass
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.cli.failures import fail, fail_on_configuration_errors
from opsconductor.config import Settings
from opsconductor.db import create_engine, create_sessionmaker, unit_of_work
from opsconductor.processes import exit_now
from opsconductor.security.envelope import KeyRing
from opsconductor.security.keys import load_process_keys
from opsconductor.services.key_retirement import KeyUsers, key_users
from opsconductor.services.sealing import key_ids_in_use, keyring_from, rewrap_batch
from opsconductor.temporal.client import connect

app = typer.Typer(no_args_is_help=True, help="Manage the vault's master keys.")

# Exit status of `check-retired` while a retired key is still needed.
EXIT_KEY_STILL_NEEDED = 1
# Workflow and schedule ids named per key; the count says how many there are in all.
SHOWN_IDS = 5


@dataclass(frozen=True, slots=True)
class RotationReport:
    rewrapped: int
    current: int
    # Rows wrapped by a master key this process does not have (not in MASTER_KEYS_OLD).
    unknown: dict[str, int]


async def rotate_keys(
    sessionmaker: async_sessionmaker[AsyncSession],
    keyring: KeyRing,
    batch_size: int,
    max_batches: int | None = None,
) -> RotationReport:
    """Each batch is its own transaction: an interrupted rotation keeps what it finished, and
    running it again continues with the rows still under an old key."""
    rewrapped = batches = 0
    while max_batches is None or batches < max_batches:
        async with unit_of_work(sessionmaker) as session:
            count = await rewrap_batch(session, keyring, batch_size)
        if count == 0:
            break
        rewrapped += count
        batches += 1
    async with sessionmaker() as session:
        in_use = await key_ids_in_use(session)
    return RotationReport(
        rewrapped=rewrapped,
        current=in_use.get(keyring.current_id, 0),
        unknown={
            key_id: count
            for key_id, count in in_use.items()
            if key_id != keyring.current_id and not keyring.knows(key_id)
        },
    )


@app.command()
@fail_on_configuration_errors
def rotate(
    batch_size: Annotated[int, typer.Option(min=1, help="Credentials per transaction.")] = 100,
) -> None:
    """Re-wrap every credential's data key under the current master key."""
    settings = Settings()
    keyring = keyring_from(load_process_keys(settings))

    async def main() -> RotationReport:
        engine = create_engine(settings)
        try:
            return await rotate_keys(create_sessionmaker(engine), keyring, batch_size)
        finally:
            await engine.dispose()

    report = asyncio.run(main())
    typer.echo(
        f"re-wrapped {report.rewrapped} credential(s); {report.current} now under the current "
        f"master key {keyring.current_id}"
    )
    if report.unknown:
        missing = ", ".join(f"{key_id} ({count})" for key_id, count in report.unknown.items())
        raise fail(
            f"credentials wrapped by master keys not configured here remain: {missing}; add "
            "those keys to OPSCONDUCTOR_MASTER_KEYS_OLD and run again"
        )


def _named(ids: list[str]) -> str:
    shown = ", ".join(ids[:SHOWN_IDS])
    more = len(ids) - SHOWN_IDS
    return f"{shown} and {more} more" if more > 0 else shown


def _still_needed_by(user: KeyUsers) -> str:
    reasons = []
    if user.credentials:
        reasons.append(f"{user.credentials} credential(s) (run `opsconductor keys rotate`)")
    if user.open_workflows:
        reasons.append(
            f"{len(user.open_workflows)} open workflow(s): {_named(user.open_workflows)}"
        )
    if user.schedules:
        reasons.append(f"{len(user.schedules)} schedule(s): {_named(user.schedules)}")
    return "; ".join(reasons)


@app.command("check-retired")
@fail_on_configuration_errors
def check_retired() -> None:
    """Say whether each key in OPSCONDUCTOR_MASTER_KEYS_OLD can be dropped; exit 1 while one is
    still needed by credentials, open workflows or schedules."""
    settings = Settings()
    keys = load_process_keys(settings)
    if not keys.retired_master_keys:
        typer.echo("no retired master keys configured (OPSCONDUCTOR_MASTER_KEYS_OLD is empty)")
        return

    async def main() -> list[KeyUsers]:
        engine = create_engine(settings)
        try:
            temporal = await connect(settings)
            async with create_sessionmaker(engine)() as session:
                return await key_users(session, temporal, keys.retired_master_keys)
        finally:
            await engine.dispose()

    users = asyncio.run(main())
    for user in users:
        if user.needed:
            typer.echo(f"master key {user.key_id}: still needed by {_still_needed_by(user)}")
        else:
            typer.echo(f"master key {user.key_id}: can be dropped")
    if any(user.needed for user in users):
        typer.secho(
            "error: keep the keys still needed in OPSCONDUCTOR_MASTER_KEYS_OLD until they can "
            "be dropped",
            fg=typer.colors.RED,
            err=True,
        )
        exit_now(EXIT_KEY_STILL_NEEDED)
    exit_now(0)
