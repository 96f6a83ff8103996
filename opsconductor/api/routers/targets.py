"""Targets: operators manage the inventory, viewers read it; bulk import, host keys, tests."""

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status

from opsconductor.api.auth import AuditDep
from opsconductor.api.deps import PageDep, SessionDep, WorkflowsDep
from opsconductor.api.permissions import TargetManager, TargetReader
from opsconductor.contracts.connection_tests import ConnectionTestResult
from opsconductor.errors import BadRequest, FieldProblem, InputInvalid
from opsconductor.jobspec.document import TargetSelector
from opsconductor.models.page import Page
from opsconductor.models.target import (
    HostKeyAccept,
    ImportReport,
    Protocol,
    TargetCreate,
    TargetPublic,
    TargetSelection,
    TargetUpdate,
)
from opsconductor.services import targets
from opsconductor.services.credential_grants import Requester

router = APIRouter(prefix="/targets", tags=["targets"])


MAX_IMPORT_BYTES = 5 * 1024 * 1024
IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            "text/csv": {
                "schema": {"type": "string"},
                "example": "name,address,protocol,port,credential,os,tags,groups\n"
                "web-1,10.0.0.5,ssh,22,deploy-key,debian,env=prod;role=web,web;prod\n",
            },
        },
    }
}


@router.get("", name="target.list")
async def list_targets(
    _: TargetReader,
    session: SessionDep,
    page: PageDep,
    tag: Annotated[list[str], Query(description="key=value; repeat to require several")] = [],  # noqa: B006
    group: Annotated[str | None, Query(description="A group name")] = None,
    protocol: Annotated[Protocol | None, Query()] = None,
    q: Annotated[str | None, Query(max_length=200, description="Part of name or address")] = None,
) -> Page[TargetPublic]:
    return await targets.list_targets(
        session,
        tags=targets.parse_tag_filters(tag),
        group=group,
        protocol=protocol,
        search=q,
        page=page,
    )


@router.post("", name="target.create", status_code=status.HTTP_201_CREATED)
async def create_target(
    body: TargetCreate, principal: TargetManager, session: SessionDep, entry: AuditDep
) -> TargetPublic:
    target = await targets.create_target(session, body, Requester.of(principal))
    entry.on("target", target.id)
    entry.detail["name"] = target.name
    return await targets.public(session, target)


@router.post("/import", name="target.import", openapi_extra=IMPORT_BODY)
async def import_targets(
    request: Request, principal: TargetManager, session: SessionDep, entry: AuditDep
) -> ImportReport:
    """Upsert by name: new names are created, known names get the fields the row gives.
    Send a JSON list of targets (`credential` may name a credential) or text/csv."""
    rows = await _import_rows(request)
    report = await targets.import_targets(session, rows, Requester.of(principal))
    entry.detail.update(created=report.created, updated=report.updated, failed=report.failed)
    return report


async def _import_rows(request: Request) -> list[Any]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if len(body) > MAX_IMPORT_BYTES:
        raise BadRequest(f"an import may hold at most {MAX_IMPORT_BYTES} bytes")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputInvalid(
            "the body is not UTF-8", [FieldProblem("body", "is not UTF-8")]
        ) from None
    if media_type == "text/csv":
        return targets.rows_from_csv(text)
    if media_type != "application/json":
        raise BadRequest("send application/json (a list of targets) or text/csv")
    try:
        rows = json.loads(text)
    except ValueError:
        raise _body_invalid("is not JSON") from None
    if not isinstance(rows, list):
        raise _body_invalid("must be a list of targets")
    return rows


def _body_invalid(message: str) -> InputInvalid:
    return InputInvalid(f"the body {message}", [FieldProblem("body", message)])


@router.get("/selected", name="target.selected")
async def selected_targets(
    _: TargetReader,
    session: SessionDep,
    groups: Annotated[list[str], Query(description="Group names; repeat for several")] = [],  # noqa: B006
    tags: Annotated[list[str], Query(description="key=value; all must match")] = [],  # noqa: B006
    names: Annotated[list[str], Query(description="Target names; repeat for several")] = [],  # noqa: B006
) -> TargetSelection:
    """The targets a job's selector (the union of groups, tags and names) matches now: a
    GET, so a form may ask as the user types without leaving an audit row each time."""
    selector = TargetSelector(
        groups=groups, tags=targets.parse_tag_filters(tags, "tags"), names=names
    )
    return await targets.preview_selector(session, selector)


@router.get("/{id}", name="target.read")
async def get_target(id: uuid.UUID, _: TargetReader, session: SessionDep) -> TargetPublic:
    return await targets.public(session, await targets.get_target(session, id))


@router.patch("/{id}", name="target.update")
async def update_target(
    id: uuid.UUID,
    body: TargetUpdate,
    principal: TargetManager,
    session: SessionDep,
    entry: AuditDep,
) -> TargetPublic:
    entry.detail["fields"] = sorted(body.model_fields_set)
    target = await targets.update_target(session, id, body, Requester.of(principal))
    return await targets.public(session, target)


@router.delete("/{id}", name="target.delete", status_code=status.HTTP_204_NO_CONTENT)
async def delete_target(id: uuid.UUID, _: TargetManager, session: SessionDep) -> None:
    await targets.delete_target(session, id)


@router.post("/{id}/host-key", name="target.accept_host_key")
async def accept_host_key(
    id: uuid.UUID, body: HostKeyAccept, _: TargetManager, session: SessionDep, entry: AuditDep
) -> TargetPublic:
    """Pin a host key: a given fingerprint, or the one a refused connection was offered."""
    target = await targets.accept_host_key(session, id, body)
    entry.detail["fingerprint"] = target.host_key_fingerprint
    return await targets.public(session, target)


@router.post("/{id}/test", name="target.test")
async def connection_test(
    id: uuid.UUID, _: TargetManager, session: SessionDep, workflows: WorkflowsDep, entry: AuditDep
) -> ConnectionTestResult:
    result = await targets.test_connection(session, workflows, id)
    entry.detail.update(ok=result.ok)
    return result
