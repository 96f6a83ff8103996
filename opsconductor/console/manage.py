"""Pages that create, edit and delete credentials, targets and groups. Each draws forms from
`console/forms.py`; the browser sends them to the API (the page itself only reads)."""

import uuid
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from opsconductor.console.forms import (
    Form,
    credential_form,
    group_form,
    members_form,
    rotate_form,
    target_form,
)
from opsconductor.console.grants import access_log, grant_forms, granted_to
from opsconductor.console.pages import page
from opsconductor.console.session import Console, ConsoleDep

router = APIRouter(include_in_schema=False)

# Enough for a form's choices; a bigger inventory is picked through the API or the CLI.
CHOICES = 500


def creating(console: Console, noun: str, manager: str, form: Form) -> HTMLResponse:
    """The page with the one form that creates a `noun` (listed at /lists/<noun>s)."""
    back = (f"{noun.capitalize()}s", f"/lists/{noun}s")
    return page(
        console, "manage.html", title=f"New {noun}", manager=manager, forms=[form], back=back
    )


@router.get("/credentials/new")
async def new_credential(console: ConsoleDep) -> HTMLResponse:
    return creating(console, "credential", "credentials:manage", credential_form())


@router.get("/credentials/{credential_id}")
async def credential_page(
    credential_id: uuid.UUID, console: ConsoleDep, offset: int = 0
) -> HTMLResponse:
    item = await console.get(f"/credentials/{credential_id}")
    return page(
        console,
        "credential.html",
        title=f"Credential {item['name']}",
        manager="credentials:manage",
        item=item,
        facts={
            "kind": item["kind"],
            "public key fingerprint": item["public_key_fingerprint"],
            "rotated": item["rotated_at"],
            "used by targets": ", ".join(target["name"] for target in item["targets"]),
            "granted to": granted_to(item),
        },
        forms=[credential_form(item), rotate_form(item), *await grant_forms(console, item)],
        accesses=await access_log(console, item, offset),
        delete=f"/api/v1/credentials/{credential_id}",
        back=("Credentials", "/lists/credentials"),
    )


async def _target_form(console: Console, item: dict[str, Any] | None = None) -> Form:
    credentials = (
        (await console.get("/credentials", limit=CHOICES))["items"]
        if console.can("credentials:read")
        else []
    )
    groups = (await console.get("/target-groups", limit=CHOICES))["items"]
    return target_form(credentials, groups, item)


@router.get("/targets/new")
async def new_target(console: ConsoleDep) -> HTMLResponse:
    return creating(console, "target", "targets:manage", await _target_form(console))


@router.get("/targets/{target_id}")
async def target_page(target_id: uuid.UUID, console: ConsoleDep) -> HTMLResponse:
    item = await console.get(f"/targets/{target_id}")
    return page(
        console,
        "target.html",
        title=f"Target {item['name']}",
        manager="targets:manage",
        item=item,
        facts={
            "address": f"{item['address']}:{item['port']} ({item['protocol']})",
            "pinned host key": item["host_key_fingerprint"],
            "groups": ", ".join(item["groups"]),
        },
        forms=[await _target_form(console, item)],
        connection_test=f"/api/v1/targets/{target_id}/test",
        delete=f"/api/v1/targets/{target_id}",
        back=("Targets", "/lists/targets"),
    )


@router.get("/groups/new")
async def new_group(console: ConsoleDep) -> HTMLResponse:
    return creating(console, "group", "targets:manage", group_form())


@router.get("/groups/{group_id}")
async def group_page(group_id: uuid.UUID, console: ConsoleDep) -> HTMLResponse:
    item = await console.get(f"/target-groups/{group_id}")
    members = (await console.get("/targets", group=item["name"], limit=CHOICES))["items"]
    return page(
        console,
        "manage.html",
        title=f"Group {item['name']}",
        manager="targets:manage",
        item=item,
        facts={"members": ", ".join(target["name"] for target in members) or None},
        forms=[group_form(item), members_form(item)],
        delete=f"/api/v1/target-groups/{group_id}",
        back=("Groups", "/lists/groups"),
        notes=["A target also joins a group through the Groups check boxes of its own form."],
    )
