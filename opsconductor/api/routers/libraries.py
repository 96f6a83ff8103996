"""Step libraries: admins install, upgrade, enable, disable and remove them; everyone reads."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response, status

from opsconductor.api.auth import AuditDep
from opsconductor.api.deps import PageDep, SessionDep
from opsconductor.api.permissions import LibraryManager, LibraryReader
from opsconductor.models.library import (
    LibraryInstalled,
    LibraryPublic,
    LibraryUpdate,
    LibraryVersionPublic,
)
from opsconductor.models.page import Page
from opsconductor.services import libraries

router = APIRouter(prefix="/libraries", tags=["libraries"])

# Validated by our own validator, which names the path of each problem inside the document.
DocumentBody = Annotated[
    dict[str, Any], Body(description="A library document (see docs/libraries.md)")
]


@router.get("", name="library.list")
async def list_libraries(
    principal: LibraryReader, session: SessionDep, page: PageDep
) -> Page[LibraryPublic]:
    return await libraries.list_libraries(session, page)


@router.post("", name="library.install", status_code=status.HTTP_201_CREATED)
async def install_library(
    document: DocumentBody, principal: LibraryManager, session: SessionDep, entry: AuditDep
) -> LibraryPublic:
    library = await libraries.install(session, document, principal.user.username)
    entry.on("library", library.id)
    entry.detail.update(name=library.name, version=library.latest_version)
    return library


@router.post("/builtin", name="library.install_builtin")
async def install_builtin(
    principal: LibraryManager, session: SessionDep, entry: AuditDep
) -> list[LibraryInstalled]:
    installed = await libraries.install_builtin(session, principal.user.username)
    entry.detail["installed"] = [
        f"{item.name}@{item.version}" for item in installed if item.installed
    ]
    return installed


@router.get("/{name}", name="library.get")
async def get_library(name: str, principal: LibraryReader, session: SessionDep) -> LibraryPublic:
    return await libraries.get_library(session, name)


@router.patch("/{name}", name="library.update")
async def update_library(
    name: str, body: LibraryUpdate, principal: LibraryManager, session: SessionDep, entry: AuditDep
) -> LibraryPublic:
    library = await libraries.set_enabled(session, name, body.enabled)
    entry.on("library", library.id)
    entry.detail.update(name=name, enabled=body.enabled)
    return library


@router.delete("/{name}", name="library.delete", status_code=status.HTTP_204_NO_CONTENT)
async def remove_library(
    name: str, principal: LibraryManager, session: SessionDep, entry: AuditDep
) -> None:
    entry.detail["name"] = name
    entry.on("library", await libraries.remove(session, name))


@router.post("/{name}/versions", name="library.upgrade", status_code=status.HTTP_201_CREATED)
async def add_version(
    name: str,
    document: DocumentBody,
    principal: LibraryManager,
    session: SessionDep,
    entry: AuditDep,
    response: Response,
) -> LibraryVersionPublic:
    version, created = await libraries.add_version(session, name, document, principal.user.username)
    entry.detail.update(name=name, version=version.version, new_version=created)
    if not created:
        # The same document again: nothing changed, as with an unchanged job save.
        response.status_code = status.HTTP_200_OK
    response.headers["X-OpsConductor-Changed"] = "true" if created else "false"
    return version


@router.get("/{name}/versions/{version}", name="library.version")
async def get_version(
    name: str, version: str, principal: LibraryReader, session: SessionDep
) -> LibraryVersionPublic:
    return await libraries.get_version(session, name, version)


@router.patch("/{name}/versions/{version}", name="library.version_update")
async def update_version(
    name: str,
    version: str,
    body: LibraryUpdate,
    principal: LibraryManager,
    session: SessionDep,
    entry: AuditDep,
) -> LibraryVersionPublic:
    answer = await libraries.set_version_enabled(session, name, version, body.enabled)
    entry.detail.update(name=name, version=version, enabled=body.enabled)
    return answer
