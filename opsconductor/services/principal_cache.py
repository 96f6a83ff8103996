"""A few seconds' memory, per process, of whom a bearer token belongs to (docs/security.md,
"Every request checks the session row").

Reading requests (GET, HEAD, OPTIONS) may answer from it; a request that changes something
always checks the token against the database. Two bounds keep it honest:

- an entry is used for at most `FRESH_SECONDS` after the database lookup that made it, and
  never past the moment its credential lapses (the access token's or session's expiry, the API
  token's);
- any committed change to a user, a session or an API token (a revocation, a logout,
  disabling a user, a new role, a new password; also a login) forgets every entry: at once in
  the process that made it, and in every API process through PostgreSQL's NOTIFY on
  `IDENTITY_CHANNEL`, sent in the change's own transaction (so it arrives only if the change
  is committed) by any process that imports this module: other API workers, the CLI. An API
  process whose listening connection is lost until it reconnects still forgets within
  `FRESH_SECONDS`.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.orm import ORMExecuteState, Session

from opsconductor.models.api_token import ApiToken
from opsconductor.models.session import AuthSession
from opsconductor.models.user import User
from opsconductor.security.rbac import Principal

FRESH_SECONDS = 5.0
# A bound on memory: past it the oldest entry makes room (tokens are ~300 bytes each).
MAX_ENTRIES = 10_000

# The rows whose change may change who a token belongs to, or whether it still works.
_IDENTITY_ROWS = (User, AuthSession, ApiToken)
# Set on a session (its `info`) that wrote one of them, until it commits.
_CHANGED = "opsconductor.identity_changed"
# Every API process listens here (api/app.py) and forgets on each notification.
IDENTITY_CHANNEL = "opsconductor_identity"


@dataclass(frozen=True, slots=True)
class _Entry:
    principal: Principal
    fresh_until: float  # on the monotonic clock
    generation: int


class PrincipalCache:
    def __init__(
        self,
        fresh_seconds: float = FRESH_SECONDS,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.fresh_seconds = fresh_seconds
        self.max_entries = max_entries
        self.clock = clock
        # Bumped by every forget_all: an entry made from a lookup that started before a change
        # was committed is never used, even if it is stored after the change.
        self.generation = 0
        self._entries: dict[str, _Entry] = {}

    def recall(self, token: str, now: datetime) -> Principal | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        lapses = entry.principal.expires_at
        if (
            entry.generation != self.generation
            or self.clock() >= entry.fresh_until
            or (lapses is not None and lapses <= now)
        ):
            del self._entries[token]
            return None
        return entry.principal

    def remember(self, token: str, principal: Principal, generation: int) -> None:
        """Keep `principal`, found by a lookup that started at `generation`."""
        if generation != self.generation:
            return
        if len(self._entries) >= self.max_entries and token not in self._entries:
            del self._entries[next(iter(self._entries))]
        self._entries[token] = _Entry(principal, self.clock() + self.fresh_seconds, generation)

    def forget_all(self) -> None:
        self.generation += 1
        self._entries.clear()


# One per process: every app and every session of the process reports its changes to it.
PRINCIPALS = PrincipalCache()


@event.listens_for(Session, "before_flush")
def _note_identity_rows(session: Session, _context: Any, _instances: Any) -> None:
    if any(
        isinstance(row, _IDENTITY_ROWS)
        for row in chain(session.new, session.dirty, session.deleted)
    ):
        session.info[_CHANGED] = True


@event.listens_for(Session, "do_orm_execute")
def _note_identity_statements(state: ORMExecuteState) -> None:
    # Bulk UPDATE/DELETE statements (revoking a user's sessions) never pass through a flush.
    if (state.is_update or state.is_delete) and any(
        mapper.class_ in _IDENTITY_ROWS for mapper in state.all_mappers
    ):
        state.session.info[_CHANGED] = True


@event.listens_for(Session, "before_commit")
def _tell_other_processes(session: Session) -> None:
    if session.info.get(_CHANGED):
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": IDENTITY_CHANNEL})


def forget_on_notification(*_notification: object) -> None:
    """An asyncpg listener for IDENTITY_CHANNEL."""
    PRINCIPALS.forget_all()


@event.listens_for(Session, "after_commit")
def _forget_after_change(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        PRINCIPALS.forget_all()
    # A session that rolled back keeps its mark until its next commit: forgetting once too
    # often costs a lookup, forgetting too seldom would keep a revoked token working.
