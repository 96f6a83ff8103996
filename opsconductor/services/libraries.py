"""Step libraries: install, upgrade, enable and disable, remove; and the installed libraries a
job save expands its library steps from.

Versions are immutable: a version, once installed, always means the same document, which is
what lets a job version pin it. Removing a library is refused while the current version of a
job uses it (its runs could need the library's files); saved job versions never need the
library otherwise, since they hold the expanded steps.
"""

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml
from sqlalchemy import delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.errors import Conflict, FieldProblem, InputInvalid, NotFound
from opsconductor.jobspec.expansion import FileReference, InstalledLibrary, InstalledVersion
from opsconductor.jobspec.library import LibraryDocument, semver_key, validate_library
from opsconductor.models.base import public_view, utcnow
from opsconductor.models.job import Job, JobVersion
from opsconductor.models.library import (
    Library,
    LibraryInstalled,
    LibraryPublic,
    LibraryVersion,
    LibraryVersionPublic,
    LibraryVersionSummary,
)
from opsconductor.models.page import Page
from opsconductor.services.paging import PageRequest, paginate_as

BUILTIN_PACKAGE = "opsconductor.libraries"


def checked(raw: Any) -> tuple[LibraryDocument, dict[str, Any]]:
    """The validated document, and the form it is stored in (what was written, normalized)."""
    report = validate_library(raw)
    if not report.valid or report.document is None:
        paths = ", ".join(problem.path for problem in report.problems[:10])
        raise InputInvalid(f"the library document is invalid at: {paths}", report.problems)
    document = report.document
    return document, document.model_dump(mode="json", by_alias=True, exclude_unset=True)


async def _by_name(session: AsyncSession, name: str) -> Library | None:
    return (await session.exec(select(Library).where(Library.name == name))).first()


async def _get(session: AsyncSession, name: str) -> Library:
    library = await _by_name(session, name)
    if library is None:
        raise NotFound(f"no library {name!r}")
    return library


async def _versions(
    session: AsyncSession, library_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, list[LibraryVersion]]:
    rows = await session.exec(
        select(LibraryVersion).where(col(LibraryVersion.library_id).in_(list(library_ids)))
    )
    found: dict[uuid.UUID, list[LibraryVersion]] = defaultdict(list)
    for row in rows:
        found[row.library_id].append(row)
    for versions in found.values():
        versions.sort(key=lambda item: semver_key(item.version), reverse=True)
    return found


async def _version(session: AsyncSession, library: Library, version: str) -> LibraryVersion:
    row = (
        await session.exec(
            select(LibraryVersion).where(
                LibraryVersion.library_id == library.id, LibraryVersion.version == version
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"the library {library.name!r} has no version {version}")
    return row


def _public(library: Library, versions: Sequence[LibraryVersion]) -> LibraryPublic:
    """`versions` newest first."""
    latest = next((item.version for item in versions if item.enabled), None)
    return public_view(
        LibraryPublic,
        library,
        latest_version=latest if library.enabled else None,
        versions=[public_view(LibraryVersionSummary, item) for item in versions],
        document=versions[0].document if versions else {},
    )


def _version_public(library: Library, version: LibraryVersion) -> LibraryVersionPublic:
    return public_view(LibraryVersionPublic, version, name=library.name)


async def _public_of(session: AsyncSession, library: Library) -> LibraryPublic:
    return _public(library, (await _versions(session, [library.id])).get(library.id, []))


async def install(session: AsyncSession, raw: Any, actor: str) -> LibraryPublic:
    document, stored = checked(raw)
    if await _by_name(session, document.name) is not None:
        raise Conflict(
            f"the library {document.name!r} is installed already; upgrade it with "
            f"POST /libraries/{document.name}/versions"
        )
    library = Library(name=document.name, description=document.description, created_by=actor)
    session.add(library)
    await session.flush()
    session.add(
        LibraryVersion(
            library_id=library.id, version=document.version, document=stored, created_by=actor
        )
    )
    await session.flush()
    return await _public_of(session, library)


async def add_version(
    session: AsyncSession, name: str, raw: Any, actor: str
) -> tuple[LibraryVersionPublic, bool]:
    """Installs a version of an installed library; answers whether it was new. The same
    version again is accepted only with the same document (versions are immutable)."""
    library = await _get(session, name)
    document, stored = checked(raw)
    if document.name != name:
        raise InputInvalid(
            "the document names another library",
            [FieldProblem("name", f"must be {name!r}, the library being upgraded", "name")],
        )
    existing = (
        await session.exec(
            select(LibraryVersion).where(
                LibraryVersion.library_id == library.id,
                LibraryVersion.version == document.version,
            )
        )
    ).first()
    if existing is not None:
        if existing.document != stored:
            raise Conflict(
                f"{name}@{document.version} is installed with another document; versions are "
                "immutable, so give the change a new version"
            )
        return _version_public(library, existing), False
    version = LibraryVersion(
        library_id=library.id, version=document.version, document=stored, created_by=actor
    )
    session.add(version)
    library.updated_at = utcnow()
    versions = (await _versions(session, [library.id])).get(library.id, [])
    if all(semver_key(document.version) > semver_key(item.version) for item in versions):
        library.description = document.description
    session.add(library)
    await session.flush()
    return _version_public(library, version), True


async def set_enabled(session: AsyncSession, name: str, enabled: bool) -> LibraryPublic:
    library = await _get(session, name)
    library.enabled = enabled
    library.updated_at = utcnow()
    session.add(library)
    await session.flush()
    return await _public_of(session, library)


async def set_version_enabled(
    session: AsyncSession, name: str, version: str, enabled: bool
) -> LibraryVersionPublic:
    library = await _get(session, name)
    row = await _version(session, library, version)
    row.enabled = enabled
    library.updated_at = utcnow()
    session.add_all([row, library])
    await session.flush()
    return _version_public(library, row)


async def remove(session: AsyncSession, name: str) -> uuid.UUID:
    library = await _get(session, name)
    users = await session.exec(
        select(Job.name)
        .join(
            JobVersion,
            (col(JobVersion.job_id) == col(Job.id))
            & (col(JobVersion.version) == col(Job.current_version)),
        )
        .where(col(Job.deleted_at).is_(None))
        .where(col(JobVersion.libraries).contains([{"library": name}]))
        .order_by(col(Job.name))
    )
    names = list(users)
    if names:
        raise Conflict(
            f"the library {name!r} is used by the current version of these jobs: "
            f"{', '.join(names)}; save them without it, or disable the library instead",
            jobs=names,
        )
    await session.exec(delete(LibraryVersion).where(col(LibraryVersion.library_id) == library.id))
    await session.delete(library)
    await session.flush()
    return library.id


async def _publics(session: AsyncSession, libraries: Sequence[Library]) -> list[LibraryPublic]:
    versions = await _versions(session, [library.id for library in libraries])
    return [_public(library, versions.get(library.id, [])) for library in libraries]


async def list_libraries(session: AsyncSession, page: PageRequest) -> Page[LibraryPublic]:
    statement = select(Library).order_by(col(Library.name))
    return await paginate_as(session, statement, page, _publics)


async def get_library(session: AsyncSession, name: str) -> LibraryPublic:
    return await _public_of(session, await _get(session, name))


async def get_version(session: AsyncSession, name: str, version: str) -> LibraryVersionPublic:
    library = await _get(session, name)
    return _version_public(library, await _version(session, library, version))


async def installed_libraries(
    session: AsyncSession, names: Iterable[str] | None = None
) -> dict[str, InstalledLibrary]:
    """Libraries as job saves expand from them: every one named (all when `names` is None)."""
    statement = select(Library)
    if names is not None:
        statement = statement.where(col(Library.name).in_(list(names)))
    libraries = list((await session.exec(statement)).all())
    versions = await _versions(session, [library.id for library in libraries])
    return {
        library.name: InstalledLibrary(
            name=library.name,
            enabled=library.enabled,
            versions={
                item.version: InstalledVersion(
                    LibraryDocument.model_validate(item.document), item.enabled
                )
                for item in versions.get(library.id, [])
            },
        )
        for library in libraries
    }


async def library_file(session: AsyncSession, library: str, version: str, name: str) -> str:
    """The content of a library version's file, for ssh.upload's `file`.

    Expanded job steps name a file as `library@version/name` (see `read_library_file`). The
    file is answered whether or not the library or version is enabled now: a saved job
    version keeps working after a library is disabled.
    """
    row = (
        await session.exec(
            select(LibraryVersion)
            .join(Library, col(Library.id) == col(LibraryVersion.library_id))
            .where(Library.name == library, LibraryVersion.version == version)
        )
    ).first()
    if row is None:
        raise NotFound(f"no library version {library}@{version}")
    files = row.document.get("files", {})
    if name not in files:
        raise NotFound(f"{library}@{version} has no file {name!r}")
    return str(files[name])


async def read_library_file(session: AsyncSession, reference: str) -> str:
    """`library_file` for a reference as ssh.upload's expanded `file` holds it."""
    parsed = FileReference.parse(reference)
    if parsed is None:
        raise NotFound(f"{reference!r} does not name a library file (library@version/name)")
    return await library_file(session, parsed.library, parsed.version, parsed.name)


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """An enabled library as GET /steps shows it: its newest enabled version's steps."""

    version: str
    versions: list[str]
    document: LibraryDocument


async def catalog(session: AsyncSession) -> list[CatalogEntry]:
    entries = []
    for library in sorted((await installed_libraries(session)).values(), key=lambda x: x.name):
        enabled = [number for number, item in library.versions.items() if item.enabled]
        if not (library.enabled and enabled):
            continue
        ordered = sorted(enabled, key=semver_key, reverse=True)
        entries.append(CatalogEntry(ordered[0], ordered, library.versions[ordered[0]].document))
    return entries


def builtin_documents() -> list[dict[str, Any]]:
    folder = resources.files(BUILTIN_PACKAGE)
    return [
        yaml.safe_load(item.read_text(encoding="utf-8"))
        for item in sorted(folder.iterdir(), key=lambda entry: entry.name)
        if item.name.endswith(".yaml")
    ]


async def install_or_upgrade(session: AsyncSession, raw: Any, actor: str) -> LibraryInstalled:
    """Installs the library, or this version of it; a version installed already with the
    same document is left as it is."""
    document, _ = checked(raw)
    if await _by_name(session, document.name) is None:
        await install(session, raw, actor)
        created = True
    else:
        _, created = await add_version(session, document.name, raw, actor)
    return LibraryInstalled(name=document.name, version=document.version, installed=created)


async def install_builtin(session: AsyncSession, actor: str) -> list[LibraryInstalled]:
    """Installs the shipped libraries at this release's versions; safe at every deployment."""
    return [await install_or_upgrade(session, raw, actor) for raw in builtin_documents()]
