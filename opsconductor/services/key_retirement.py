"""Whether a retired master key (in OPSCONDUCTOR_MASTER_KEYS_OLD) can be dropped.

A master key is still needed while anything sealed under it must be read: a credential or channel
whose data key it wraps (`opsconductor keys rotate` re-wraps those), an open workflow whose
history holds payloads the codec sealed with it (the workflow replays them on every worker
restart or cache eviction, and would fail for ever without the key), or a Temporal schedule
whose start action was sealed with it (its next fire would start a run nobody can read).
"""

from dataclasses import dataclass, field

from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from opsconductor.security.envelope import key_id
from opsconductor.services.sealing import key_ids_in_use
from opsconductor.temporal.codec import codec_key_id, sealing_key_ids

# Temporal visibility: every workflow that has not closed.
OPEN_WORKFLOWS = 'ExecutionStatus="Running"'


@dataclass(slots=True)
class KeyUsers:
    """What still needs one master key, named by its vault key id."""

    key_id: str
    credentials: int = 0
    open_workflows: list[str] = field(default_factory=list)
    schedules: list[str] = field(default_factory=list)

    @property
    def needed(self) -> bool:
        return bool(self.credentials or self.open_workflows or self.schedules)


async def key_users(
    session: AsyncSession, temporal: Client, master_keys: tuple[bytes, ...]
) -> list[KeyUsers]:
    """For each master key, what still needs it. Reads every open workflow's history, so its
    cost grows with the open workflows (closed ones are not read)."""
    by_codec_id = {codec_key_id(master): KeyUsers(key_id(master)) for master in master_keys}
    users = list(by_codec_id.values())
    sealed_rows = await key_ids_in_use(session)
    for user in users:
        user.credentials = sealed_rows.get(user.key_id, 0)
    async for execution in temporal.list_workflows(OPEN_WORKFLOWS):
        handle = temporal.get_workflow_handle(execution.id, run_id=execution.run_id)
        needed: set[str] = set()
        async for event in handle.fetch_history_events():
            needed |= sealing_key_ids(event)
        for codec_id in needed & by_codec_id.keys():
            by_codec_id[codec_id].open_workflows.append(execution.id)
    async for listed in await temporal.list_schedules():
        description = await temporal.get_schedule_handle(listed.id).describe()
        for codec_id in sealing_key_ids(description.raw_description) & by_codec_id.keys():
            by_codec_id[codec_id].schedules.append(listed.id)
    return users
