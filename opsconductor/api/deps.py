"""Annotated dependency aliases shared by every router."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from opsconductor.config import Settings
from opsconductor.db import unit_of_work
from opsconductor.security.envelope import KeyRing
from opsconductor.security.keys import ProcessKeys

API_PREFIX = "/api/v1"


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


def _temporal(request: Request) -> Client:
    client: Client = request.app.state.temporal
    return client


def _keys(request: Request) -> ProcessKeys:
    keys: ProcessKeys = request.app.state.keys
    return keys


def _keyring(request: Request) -> KeyRing:
    keyring: KeyRing = request.app.state.keyring
    return keyring


def _sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return sessionmaker


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async with unit_of_work(request.app.state.sessionmaker) as session:
        yield session


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int
    offset: int


def _page(
    limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0)] = 0
) -> PageParams:
    return PageParams(limit=limit, offset=offset)


SettingsDep = Annotated[Settings, Depends(_settings)]
EngineDep = Annotated[AsyncEngine, Depends(_engine)]
TemporalDep = Annotated[Client, Depends(_temporal)]
KeysDep = Annotated[ProcessKeys, Depends(_keys)]
# The vault's key ring: the API seals credentials with it and never opens them.
KeyRingDep = Annotated[KeyRing, Depends(_keyring)]
# For work that must be committed even when the request's own transaction is rolled back.
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(_sessionmaker)]
# scope="function": the commit happens before the answer is sent, so a failed commit is never
# reported to the client as a success.
SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]
PageDep = Annotated[PageParams, Depends(_page)]
