"""Annotated dependency aliases shared by every router."""

import re
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from opsconductor.config import Settings
from opsconductor.db import unit_of_work
from opsconductor.errors import FieldProblem, InputInvalid
from opsconductor.security.envelope import KeyRing
from opsconductor.security.keys import ProcessKeys
from opsconductor.services.paging import PageRequest
from opsconductor.services.workflows import Workflows
from opsconductor.temporal.codec import EncryptionCodec

API_PREFIX = "/api/v1"
# Requests that change nothing: their session has no transaction (db.create_reading_sessionmaker)
# and their principal may be a few seconds old (services/principal_cache.py).
READING_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Past any real list, and far below PostgreSQL's bigint, which a larger offset overflows.
MAX_OFFSET = 1_000_000_000
# PostgreSQL text holds no NUL character, and UTF-8 has no lone surrogate halves.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_UNSTORABLE_MESSAGE = "must not contain NUL characters or unpaired surrogates"

# Every dependency is `async def`, though these await nothing: FastAPI runs a plain `def`
# dependency in its thread pool, a thread hop (and a wake-up of the event loop) per dependency
# per request (benchmarks/README.md, fix 5).


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


async def _temporal(request: Request) -> Client:
    client: Client = request.app.state.temporal
    return client


async def _keys(request: Request) -> ProcessKeys:
    keys: ProcessKeys = request.app.state.keys
    return keys


async def _keyring(request: Request) -> KeyRing:
    keyring: KeyRing = request.app.state.keyring
    return keyring


async def _sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return sessionmaker


async def _workflows(request: Request) -> Workflows:
    return Workflows(
        client=request.app.state.temporal,
        sessionmaker=request.app.state.sessionmaker,
        console_url=request.app.state.settings.public_url,
    )


async def _codec(request: Request) -> EncryptionCodec:
    codec: EncryptionCodec = request.app.state.codec
    return codec


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    sessionmaker = (
        request.app.state.reading_sessionmaker
        if request.method in READING_METHODS
        else request.app.state.sessionmaker
    )
    async with unit_of_work(sessionmaker) as session:
        yield session


async def _page(
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    cursor: Annotated[str | None, Query(min_length=1, max_length=2000)] = None,
) -> PageRequest:
    return PageRequest(limit=limit, offset=offset, cursor=cursor)


SettingsDep = Annotated[Settings, Depends(_settings)]
EngineDep = Annotated[AsyncEngine, Depends(_engine)]
# Not for routers (they never hold the Temporal client): for dependencies built on it.
TemporalDep = Annotated[Client, Depends(_temporal)]
# What a router hands, untouched, to a service that acts on Temporal (services/workflows.py).
WorkflowsDep = Annotated[Workflows, Depends(_workflows)]
# The payload codec of Temporal's Web UI and CLI (routers/codec.py).
CodecDep = Annotated[EncryptionCodec, Depends(_codec)]
KeysDep = Annotated[ProcessKeys, Depends(_keys)]
# The vault's key ring: the API seals credentials with it and never opens them.
KeyRingDep = Annotated[KeyRing, Depends(_keyring)]
# For work that must be committed even when the request's own transaction is rolled back.
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(_sessionmaker)]
# scope="function": the commit happens before the answer is sent, so a failed commit is never
# reported to the client as a success.
SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]
PageDep = Annotated[PageRequest, Depends(_page)]


def _unstorable_paths(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, str):
        if _UNSTORABLE.search(value):
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            item_path = f"{path}.{_UNSTORABLE.sub('?', key)}"
            if _UNSTORABLE.search(key):
                yield item_path
            yield from _unstorable_paths(item, item_path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _unstorable_paths(item, f"{path}.{index}")


async def refuse_unstorable_text(request: Request) -> None:
    """Text that PostgreSQL cannot store is refused naming its field, instead of failing the
    query with a 500."""
    query = request.query_params.multi_items()
    places = [
        *_unstorable_paths(dict(request.path_params), "path"),
        *(f"query.{name}" for name, value in query if _UNSTORABLE.search(value)),
    ]
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            body = None  # the route's own parsing reports it
        places += _unstorable_paths(body, "body")
    if places:
        raise InputInvalid(
            f"invalid input at: {', '.join(places)}",
            [FieldProblem(place, _UNSTORABLE_MESSAGE, "string_unstorable") for place in places],
        )
