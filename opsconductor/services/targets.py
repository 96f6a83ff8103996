"""The target inventory: targets, groups, bulk import, host-key pinning, and selector resolution
for the job engine."""

import csv
import io
import uuid
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement, delete, func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError

from opsconductor.contracts.connection_tests import (
    ConnectionTestRequest,
    ConnectionTestResult,
    connection_test_workflow_id,
)
from opsconductor.contracts.queues import TaskQueue
from opsconductor.contracts.steps import TargetSnapshot
from opsconductor.errors import (
    Conflict,
    DependencyUnavailable,
    FieldProblem,
    InputInvalid,
    NotFound,
)
from opsconductor.jobspec.document import TargetSelector
from opsconductor.models.base import utcnow
from opsconductor.models.credential import Credential, CredentialKind
from opsconductor.models.page import Page
from opsconductor.models.target import (
    DEFAULT_PORTS,
    GroupMembers,
    HostKeyAccept,
    ImportProblem,
    ImportReport,
    ImportRow,
    Protocol,
    Target,
    TargetCreate,
    TargetGroup,
    TargetGroupCreate,
    TargetGroupMember,
    TargetGroupPublic,
    TargetGroupUpdate,
    TargetPublic,
    TargetUpdate,
)
from opsconductor.services.jobs import DOCUMENT, live_jobs_where
from opsconductor.services.paging import paginate_as
from opsconductor.workflows.connection_test import ConnectionTestWorkflow

# Which credential kinds can log in over which protocol.
CREDENTIAL_KINDS_FOR = {
    Protocol.ssh: frozenset({CredentialKind.ssh_key, CredentialKind.ssh_password}),
    Protocol.winrm: frozenset({CredentialKind.winrm}),
}
CSV_COLUMNS = ("name", "address", "protocol", "port", "credential", "os", "tags", "groups")


def _invalid(path: str, message: str, kind: str = "invalid") -> InputInvalid:
    return InputInvalid(f"{path} {message}", [FieldProblem(path, message, kind)])


# -- reading ----------------------------------------------------------------------------------


async def get_target(session: AsyncSession, target_id: uuid.UUID) -> Target:
    target = await session.get(Target, target_id)
    if target is None:
        raise NotFound(f"no target {target_id}")
    return target


async def _target_by_name(session: AsyncSession, name: str) -> Target | None:
    return (await session.exec(select(Target).where(Target.name == name))).first()


async def _group_names(
    session: AsyncSession, target_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[str]]:
    rows = await session.exec(
        select(TargetGroupMember.target_id, TargetGroup.name)
        .join(TargetGroup, col(TargetGroup.id) == col(TargetGroupMember.group_id))
        .where(col(TargetGroupMember.target_id).in_(target_ids))
        .order_by(col(TargetGroup.name))
    )
    names: dict[uuid.UUID, list[str]] = {}
    for target_id, name in rows:
        names.setdefault(target_id, []).append(name)
    return names


def _public(target: Target, groups: list[str]) -> TargetPublic:
    return TargetPublic.model_validate(target, update={"groups": groups})


async def public(session: AsyncSession, target: Target) -> TargetPublic:
    return _public(target, (await _group_names(session, [target.id])).get(target.id, []))


def parse_tag_filters(values: Iterable[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for index, value in enumerate(values):
        key, equals, wanted = value.partition("=")
        if not equals or not key:
            raise _invalid(f"query.tag.{index}", "must look like key=value")
        tags[key] = wanted
    return tags


async def list_targets(
    session: AsyncSession,
    *,
    tags: dict[str, str],
    group: str | None,
    protocol: Protocol | None,
    search: str | None,
    limit: int,
    offset: int,
) -> Page[TargetPublic]:
    statement = select(Target).order_by(col(Target.name))
    if tags:
        # JSONB containment: every given tag must match (served by the GIN index).
        statement = statement.where(col(Target.tags).contains(tags))
    if group is not None:
        statement = statement.where(
            col(Target.id).in_(
                select(TargetGroupMember.target_id)
                .join(TargetGroup, col(TargetGroup.id) == col(TargetGroupMember.group_id))
                .where(TargetGroup.name == group)
            )
        )
    if protocol is not None:
        statement = statement.where(Target.protocol == protocol)
    if search:
        pattern = f"%{search.lower()}%"
        statement = statement.where(
            or_(func.lower(Target.name).like(pattern), func.lower(Target.address).like(pattern))
        )
    return await paginate_as(session, statement, limit, offset, _publics)


async def _publics(session: AsyncSession, rows: Sequence[Target]) -> list[TargetPublic]:
    groups = await _group_names(session, [row.id for row in rows])
    return [_public(row, groups.get(row.id, [])) for row in rows]


# -- writing ----------------------------------------------------------------------------------


async def _check_credential(
    session: AsyncSession, credential_id: uuid.UUID | None, protocol: Protocol
) -> None:
    if credential_id is None:
        return
    credential = await session.get(Credential, credential_id)
    if credential is None:
        raise _invalid("body.credential_id", "names no credential", "unknown_credential")
    if credential.kind not in CREDENTIAL_KINDS_FOR[protocol]:
        allowed = " or ".join(sorted(CREDENTIAL_KINDS_FOR[protocol]))
        raise _invalid(
            "body.credential_id",
            f"is a {credential.kind} credential; {protocol} targets need {allowed}",
        )


async def _group_ids(
    session: AsyncSession, names: Sequence[str], path: str
) -> dict[str, uuid.UUID]:
    found = dict(
        (
            await session.exec(
                select(TargetGroup.name, TargetGroup.id).where(col(TargetGroup.name).in_(names))
            )
        ).all()
    )
    problems = [
        FieldProblem(f"{path}.{index}", f"no target group named {name!r}", "unknown_group")
        for index, name in enumerate(names)
        if name not in found
    ]
    if problems:
        raise InputInvalid("unknown target groups", problems)
    return found


async def check_groups(session: AsyncSession, names: Sequence[str], path: str) -> None:
    """Raises InputInvalid naming each unknown group (at `path.N`)."""
    await _group_ids(session, names, path)


async def _set_groups(
    session: AsyncSession, target: Target, names: Sequence[str], path: str = "body.groups"
) -> None:
    ids = await _group_ids(session, names, path)
    await session.exec(
        delete(TargetGroupMember).where(col(TargetGroupMember.target_id) == target.id)
    )
    session.add_all(
        TargetGroupMember(target_id=target.id, group_id=group_id) for group_id in set(ids.values())
    )


async def create_target(session: AsyncSession, data: TargetCreate) -> Target:
    if await _target_by_name(session, data.name) is not None:
        raise Conflict(f"a target named {data.name!r} already exists")
    await _check_credential(session, data.credential_id, data.protocol)
    target = Target.model_validate(
        data,
        update={"id": uuid.uuid4(), "port": data.port or DEFAULT_PORTS[data.protocol]},
    )
    session.add(target)
    await session.flush()
    await _set_groups(session, target, data.groups)
    await session.flush()
    return target


async def update_target(session: AsyncSession, target_id: uuid.UUID, data: TargetUpdate) -> Target:
    target = await get_target(session, target_id)
    await _apply_update(session, target, data)
    return target


async def _apply_update(session: AsyncSession, target: Target, data: TargetUpdate) -> None:
    changes = data.model_dump(exclude_unset=True, exclude={"groups"})
    for name in ("name", "address", "protocol", "port", "tags", "vars", "description"):
        if name in changes and changes[name] is None:
            raise _invalid(f"body.{name}", "may not be null")
    renamed = "name" in changes and changes["name"] != target.name
    if renamed and await _target_by_name(session, changes["name"]) is not None:
        raise Conflict(f"a target named {changes['name']!r} already exists")
    # A protocol change without a port moves to the new protocol's default port.
    if "protocol" in changes and "port" not in changes and changes["protocol"] != target.protocol:
        changes["port"] = DEFAULT_PORTS[changes["protocol"]]
    for name, value in changes.items():
        setattr(target, name, value)
    await _check_credential(session, target.credential_id, Protocol(target.protocol))
    target.updated_at = utcnow()
    session.add(target)
    if data.groups is not None:
        await _set_groups(session, target, data.groups)
    await session.flush()


async def delete_target(session: AsyncSession, target_id: uuid.UUID) -> None:
    """Runs keep their own snapshot of the target, so deleting it does not touch history."""
    await session.delete(await get_target(session, target_id))
    await session.flush()


# -- host keys --------------------------------------------------------------------------------


async def accept_host_key(
    session: AsyncSession, target_id: uuid.UUID, body: HostKeyAccept
) -> Target:
    target = await get_target(session, target_id)
    if body.fingerprint is not None and body.accept_presented:
        raise _invalid("body", "give either fingerprint or accept_presented, not both")
    if body.fingerprint is not None:
        fingerprint = body.fingerprint
    elif body.accept_presented:
        if target.presented_host_key_fingerprint is None:
            raise Conflict(
                f"no refused host key is on record for {target.name!r}; run a connection test "
                "first, or give the fingerprint"
            )
        fingerprint = target.presented_host_key_fingerprint
    else:
        raise _invalid("body.fingerprint", "is required unless accept_presented is true")
    target.host_key_fingerprint = fingerprint
    target.presented_host_key_fingerprint = None
    target.updated_at = utcnow()
    session.add(target)
    await session.flush()
    return target


async def pinned_host_key(session: AsyncSession, target_id: uuid.UUID) -> str | None:
    """The pinned fingerprint, read at connection time so an accepted key applies at once."""
    target = await session.get(Target, target_id)
    if target is None:
        raise NotFound(f"target {target_id} is no longer in the inventory")
    return target.host_key_fingerprint


async def record_host_key(session: AsyncSession, target_id: uuid.UUID, fingerprint: str) -> None:
    """Trust on first use: pins the key only if none is pinned yet (never overwrites one)."""
    await session.exec(
        update(Target)
        .where(col(Target.id) == target_id, col(Target.host_key_fingerprint).is_(None))
        .values(host_key_fingerprint=fingerprint, presented_host_key_fingerprint=None)
    )


async def record_refused_host_key(
    session: AsyncSession, target_id: uuid.UUID, fingerprint: str
) -> None:
    await session.exec(
        update(Target)
        .where(col(Target.id) == target_id)
        .values(presented_host_key_fingerprint=fingerprint)
    )


# -- groups -----------------------------------------------------------------------------------


async def get_group(session: AsyncSession, group_id: uuid.UUID) -> TargetGroup:
    group = await session.get(TargetGroup, group_id)
    if group is None:
        raise NotFound(f"no target group {group_id}")
    return group


async def _member_counts(
    session: AsyncSession, group_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    rows = await session.exec(
        select(TargetGroupMember.group_id, func.count())
        .where(col(TargetGroupMember.group_id).in_(group_ids))
        .group_by(col(TargetGroupMember.group_id))
    )
    return dict(rows.all())


def _group_public(group: TargetGroup, count: int) -> TargetGroupPublic:
    return TargetGroupPublic.model_validate(group, update={"member_count": count})


async def group_public(session: AsyncSession, group: TargetGroup) -> TargetGroupPublic:
    return _group_public(group, (await _member_counts(session, [group.id])).get(group.id, 0))


async def list_groups(
    session: AsyncSession, search: str | None, limit: int, offset: int
) -> Page[TargetGroupPublic]:
    statement = select(TargetGroup).order_by(col(TargetGroup.name))
    if search:
        statement = statement.where(func.lower(TargetGroup.name).like(f"%{search.lower()}%"))
    return await paginate_as(session, statement, limit, offset, _group_publics)


async def _group_publics(
    session: AsyncSession, rows: Sequence[TargetGroup]
) -> list[TargetGroupPublic]:
    counts = await _member_counts(session, [row.id for row in rows])
    return [_group_public(row, counts.get(row.id, 0)) for row in rows]


async def _group_by_name(session: AsyncSession, name: str) -> TargetGroup | None:
    return (await session.exec(select(TargetGroup).where(TargetGroup.name == name))).first()


async def create_group(session: AsyncSession, data: TargetGroupCreate) -> TargetGroup:
    if await _group_by_name(session, data.name) is not None:
        raise Conflict(f"a target group named {data.name!r} already exists")
    group = TargetGroup(name=data.name, description=data.description)
    session.add(group)
    await session.flush()
    return group


async def _jobs_selecting(session: AsyncSession, group_name: str) -> list[str]:
    """Live jobs whose current version selects the group by name."""
    return await live_jobs_where(session, DOCUMENT["targets"]["groups"].contains([group_name]))


async def update_group(
    session: AsyncSession, group_id: uuid.UUID, data: TargetGroupUpdate
) -> TargetGroup:
    group = await get_group(session, group_id)
    changes = data.model_dump(exclude_unset=True)
    if "name" in changes and changes["name"] is None:
        raise _invalid("body.name", "may not be null")
    if "name" in changes and changes["name"] != group.name:
        if await _group_by_name(session, changes["name"]) is not None:
            raise Conflict(f"a target group named {changes['name']!r} already exists")
        # Jobs select groups by name: renaming one under them would silently empty their runs.
        jobs = await _jobs_selecting(session, group.name)
        if jobs:
            raise Conflict(
                f"target group {group.name!r} is selected by job(s) {', '.join(jobs)}; "
                "change their selectors first",
                jobs=jobs,
            )
    for name, value in changes.items():
        setattr(group, name, value if value is not None else "")
    group.updated_at = utcnow()
    session.add(group)
    await session.flush()
    return group


async def delete_group(session: AsyncSession, group_id: uuid.UUID) -> None:
    group = await get_group(session, group_id)
    members = list(
        (
            await session.exec(
                select(Target.name)
                .join(TargetGroupMember, col(TargetGroupMember.target_id) == col(Target.id))
                .where(TargetGroupMember.group_id == group.id)
                .order_by(col(Target.name))
            )
        ).all()
    )
    jobs = await _jobs_selecting(session, group.name)
    if members or jobs:
        used_by = []
        if members:
            used_by.append(f"target(s) {', '.join(members)}")
        if jobs:
            used_by.append(f"job(s) {', '.join(jobs)}")
        raise Conflict(
            f"target group {group.name!r} is used by {' and '.join(used_by)}",
            targets=members,
            jobs=jobs,
        )
    await session.delete(group)
    await session.flush()


async def set_members(
    session: AsyncSession, group_id: uuid.UUID, body: GroupMembers
) -> TargetGroup:
    """Replaces the group's membership with exactly these targets."""
    group = await get_group(session, group_id)
    wanted = list(dict.fromkeys(body.target_ids))
    found = set((await session.exec(select(Target.id).where(col(Target.id).in_(wanted)))).all())
    problems = [
        FieldProblem(f"body.target_ids.{index}", "names no target", "unknown_target")
        for index, target_id in enumerate(body.target_ids)
        if target_id not in found
    ]
    if problems:
        raise InputInvalid("unknown targets", problems)
    await session.exec(delete(TargetGroupMember).where(col(TargetGroupMember.group_id) == group.id))
    session.add_all(
        TargetGroupMember(target_id=target_id, group_id=group.id) for target_id in wanted
    )
    group.updated_at = utcnow()
    session.add(group)
    await session.flush()
    return group


# -- bulk import ------------------------------------------------------------------------------


def rows_from_csv(text: str) -> list[dict[str, Any]]:
    """CSV rows as import rows: empty cells are left out (an update keeps those fields);
    tags are `k=v;k2=v2`, groups `a;b`."""
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in reader.fieldnames or []]
    unknown = [name for name in header if name not in CSV_COLUMNS]
    if "name" not in header or unknown:
        raise _invalid(
            "body",
            f"the CSV header must include name and may only use {', '.join(CSV_COLUMNS)}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else ""),
        )
    reader.fieldnames = header
    rows: list[dict[str, Any]] = []
    for record in reader:
        row: dict[str, Any] = {}
        for key, value in record.items():
            if key is None or value is None or not value.strip():
                continue
            value = value.strip()
            if key == "tags":
                row[key] = _split_tags(value)
            elif key == "groups":
                row[key] = [item.strip() for item in value.split(";") if item.strip()]
            else:
                row[key] = value
        rows.append(row)
    return rows


def _split_tags(value: str) -> dict[str, str] | str:
    tags: dict[str, str] = {}
    for item in value.split(";"):
        key, equals, tag_value = item.strip().partition("=")
        if not equals or not key:
            # Left as text: validation then reports `tags` as not an object.
            return value
        tags[key.strip()] = tag_value.strip()
    return tags


def _problems(error: ValidationError | InputInvalid) -> list[ImportProblem]:
    if isinstance(error, InputInvalid):
        return [
            ImportProblem(path=item.path.removeprefix("body."), message=item.message)
            for item in error.problems
        ]
    return [
        ImportProblem(path=".".join(str(part) for part in item["loc"]), message=item["msg"])
        for item in error.errors()
    ]


async def _import_row(session: AsyncSession, row: dict[str, Any]) -> str:
    """Creates or updates one target; answers which. Raises on invalid input."""
    values = dict(row)
    credential_name = values.pop("credential", None)
    if credential_name is not None:
        if "credential_id" in values:
            raise _invalid("credential", "give credential (a name) or credential_id, not both")
        credential = (
            await session.exec(select(Credential).where(Credential.name == str(credential_name)))
        ).first()
        if credential is None:
            raise _invalid("credential", f"no credential named {credential_name!r}")
        values["credential_id"] = credential.id
    name = values.get("name")
    existing = await _target_by_name(session, name) if isinstance(name, str) else None
    if existing is None:
        await create_target(session, TargetCreate.model_validate(values))
        return "created"
    values.pop("name")
    await _apply_update(session, existing, TargetUpdate.model_validate(values))
    return "updated"


async def import_targets(session: AsyncSession, rows: Sequence[Any]) -> ImportReport:
    """Upsert by name, row by row: a new name creates a target, a known one updates the fields
    the row gives (others keep their values). Each row is its own savepoint, so one bad row
    is reported and the others still land."""
    report: list[ImportRow] = []
    for index, row in enumerate(rows, start=1):
        name = row.get("name") if isinstance(row, dict) else None
        entry = ImportRow(row=index, name=name if isinstance(name, str) else None, status="failed")
        if not isinstance(row, dict):
            entry.errors = [ImportProblem(path="", message="each row must be an object")]
            report.append(entry)
            continue
        try:
            async with session.begin_nested():
                entry.status = await _import_row(session, row)
        except (ValidationError, InputInvalid) as error:
            entry.errors = _problems(error)
        except Conflict as error:
            entry.errors = [ImportProblem(path="name", message=error.detail)]
        report.append(entry)
    counts = {
        status: sum(1 for row in report if row.status == status)
        for status in ("created", "updated", "failed")
    }
    return ImportReport(**counts, rows=report)


# -- the job engine's view ------------------------------------------------------------------


def snapshot(target: Target) -> TargetSnapshot:
    return TargetSnapshot(
        id=target.id,
        name=target.name,
        address=target.address,
        port=target.port,
        protocol=target.protocol,
        credential_id=target.credential_id,
        os=target.os,
        tags=target.tags,
        vars=target.vars,
    )


async def resolve_selector(session: AsyncSession, selector: TargetSelector) -> list[TargetSnapshot]:
    """The union of the selector's groups, its tags (all must match) and its names, by name.

    Unknown group or target names are errors (at `targets.groups.N` / `targets.names.N`): a
    typo must not quietly shrink a run.
    """
    problems: list[FieldProblem] = []
    group_ids: dict[str, uuid.UUID] = {}
    if selector.groups:
        try:
            group_ids = await _group_ids(session, selector.groups, "targets.groups")
        except InputInvalid as error:
            problems += error.problems
    if selector.names:
        known = set(
            (
                await session.exec(select(Target.name).where(col(Target.name).in_(selector.names)))
            ).all()
        )
        problems += [
            FieldProblem(f"targets.names.{index}", f"no target named {name!r}", "unknown_target")
            for index, name in enumerate(selector.names)
            if name not in known
        ]
    if problems:
        raise InputInvalid("the target selector names unknown groups or targets", problems)
    conditions: list[ColumnElement[bool]] = []
    if group_ids:
        conditions.append(
            col(Target.id).in_(
                select(TargetGroupMember.target_id).where(
                    col(TargetGroupMember.group_id).in_(list(group_ids.values()))
                )
            )
        )
    if selector.tags:
        conditions.append(col(Target.tags).contains(selector.tags))
    if selector.names:
        conditions.append(col(Target.name).in_(selector.names))
    if not conditions:
        return []
    rows = await session.exec(select(Target).where(or_(*conditions)).order_by(col(Target.name)))
    return [snapshot(target) for target in rows]


# -- connection tests -----------------------------------------------------------------------

WINRM_TESTS_UNAVAILABLE = "WinRM connection tests are not available yet"
CONNECTION_TEST_TIMEOUT = timedelta(seconds=90)


async def probe_connection(client: Client, target: Target) -> ConnectionTestResult:
    """A real login and a trivial command, run by an ssh worker (only workers decrypt)."""
    if target.protocol == Protocol.winrm:
        # No WinRM worker exists yet; saying so beats a success nobody checked.
        return ConnectionTestResult(ok=False, detail=WINRM_TESTS_UNAVAILABLE)
    try:
        return await client.execute_workflow(
            ConnectionTestWorkflow.run,
            ConnectionTestRequest(target_id=target.id),
            id=connection_test_workflow_id(target.id, uuid.uuid4().hex[:8]),
            task_queue=TaskQueue.orchestration.value,
            execution_timeout=CONNECTION_TEST_TIMEOUT,
        )
    except RPCError as error:
        raise DependencyUnavailable(f"Temporal is unavailable: {error.message}") from None
