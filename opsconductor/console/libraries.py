"""Pages for step libraries (docs/libraries.md): the list with an install form, and each
library's page with its actions, versions, upgrade, disable or enable, and remove.

A library document is YAML or JSON, pasted or read from a chosen file by the browser; the
server only turns the text into JSON (`/builder/parse`), and the browser sends that to the
API's install or upgrade route, as with any other form."""

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse

from opsconductor.console.forms import Field, Form, Kind
from opsconductor.console.pages import PAGE, page
from opsconductor.console.session import ConsoleDep

router = APIRouter(include_in_schema=False)

MANAGER = "libraries:manage"
DOCUMENT = Field(
    "document",
    "Library document",
    Kind.key,
    "YAML or JSON (name, version, steps; see docs/libraries.md): paste it or choose its file,"
    " which your browser reads",
    required=True,
)


def _document_form(form_id: str, api: str, submit: str, legend: str) -> Form:
    return Form(form_id, api, submit, [DOCUMENT], legend=legend, yaml=f"#{DOCUMENT.id}")


def install_form() -> Form:
    return _document_form(
        "install-form", "/api/v1/libraries", "Install library", "Install a library"
    )


def upgrade_form(name: str) -> Form:
    legend = f"Upgrade: install another version of {name}"
    return _document_form("upgrade-form", f"/api/v1/libraries/{name}/versions", "Upgrade", legend)


def actions_of(library: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The actions a job may use from the library's newest version: `name/step`, with what it
    takes and gives."""
    steps: Mapping[str, Any] = library["document"].get("steps") or {}
    return [
        {
            "action": f"{library['name']}/{step}",
            "description": spec.get("description", ""),
            "parameters": spec.get("parameters") or {},
            "outputs": sorted(spec.get("outputs") or {}),
        }
        for step, spec in steps.items()
    ]


@router.get("/lists/libraries")
async def former_list() -> RedirectResponse:
    """Libraries were a read-only list among the others; links to it still lead here."""
    return RedirectResponse("/libraries", status_code=308)


@router.get("/libraries")
async def libraries_page(console: ConsoleDep, offset: int = 0) -> HTMLResponse:
    answer = await console.get("/libraries", limit=PAGE, offset=max(offset, 0))
    for library in answer["items"]:
        library["actions"] = [action["action"] for action in actions_of(library)]
    return page(
        console,
        "libraries.html",
        answer=answer,
        forms=[install_form()],
        manager=MANAGER,
    )


@router.get("/libraries/{name}")
async def library_page(name: str, console: ConsoleDep) -> HTMLResponse:
    item = await console.get(f"/libraries/{name}")
    return page(
        console,
        "library.html",
        title=f"Library {item['name']}",
        manager=MANAGER,
        item=item,
        facts={
            "state": "enabled" if item["enabled"] else "disabled: new job saves refuse it",
            "description": item["description"],
            "newest enabled version": item["latest_version"],
            "installed by": item["created_by"],
        },
        actions=actions_of(item),
        forms=[upgrade_form(item["name"])],
        delete=f"/api/v1/libraries/{item['name']}",
        back=("Libraries", "/libraries"),
    )
