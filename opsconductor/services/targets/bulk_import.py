"""Bulk import: upserting targets by name from a JSON list or CSV, row by row."""

import csv
import io
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.errors import Conflict, InputInvalid
from opsconductor.models.credential import Credential
from opsconductor.models.target import (
    ImportProblem,
    ImportReport,
    ImportRow,
    TargetCreate,
    TargetUpdate,
)
from opsconductor.services.credential_grants import Requester
from opsconductor.services.targets.inventory import apply_update, create_target, target_by_name

CSV_COLUMNS = ("name", "address", "protocol", "port", "credential", "os", "tags", "groups")


def rows_from_csv(text: str) -> list[dict[str, Any]]:
    """CSV rows as import rows: empty cells are left out (an update keeps those fields);
    tags are `k=v;k2=v2`, groups `a;b`."""
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in reader.fieldnames or []]
    unknown = [name for name in header if name not in CSV_COLUMNS]
    if "name" not in header or unknown:
        raise InputInvalid.at(
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


async def _import_row(session: AsyncSession, row: dict[str, Any], requester: Requester) -> str:
    """Creates or updates one target; answers which. Raises on invalid input."""
    values = dict(row)
    credential_name = values.pop("credential", None)
    if credential_name is not None:
        if "credential_id" in values:
            raise InputInvalid.at(
                "credential", "give credential (a name) or credential_id, not both"
            )
        credential = (
            await session.exec(select(Credential).where(Credential.name == str(credential_name)))
        ).first()
        if credential is None:
            raise InputInvalid.at("credential", f"no credential named {credential_name!r}")
        values["credential_id"] = credential.id
    name = values.get("name")
    existing = await target_by_name(session, name) if isinstance(name, str) else None
    if existing is None:
        await create_target(session, TargetCreate.model_validate(values), requester)
        return "created"
    values.pop("name")
    await apply_update(session, existing, TargetUpdate.model_validate(values), requester)
    return "updated"


async def import_targets(
    session: AsyncSession, rows: Sequence[Any], requester: Requester
) -> ImportReport:
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
                entry.status = await _import_row(session, row, requester)
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
