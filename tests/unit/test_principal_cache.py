"""The bounds docs/security.md states for the memory of whom a token belongs to: how long an
entry is used, never past its credential's expiry, never from a lookup older than a change,
and how many tokens it holds."""

from datetime import UTC, datetime, timedelta

from opsconductor.models.user import Role, User
from opsconductor.security.rbac import Principal
from opsconductor.services.principal_cache import FRESH_SECONDS, PrincipalCache

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.seconds = 1000.0

    def __call__(self) -> float:
        return self.seconds


def principal(expires_at: datetime | None = None) -> Principal:
    user = User(username="victor", email="v@example.com", role=Role.viewer, password_hash="-")
    return Principal(user=user, role=Role.viewer, expires_at=expires_at)


def test_an_entry_is_used_for_at_most_five_seconds() -> None:
    clock = Clock()
    cache = PrincipalCache(clock=clock)
    victor = principal()
    cache.remember("token", victor, cache.generation)
    clock.seconds += FRESH_SECONDS - 0.01
    assert cache.recall("token", NOW) is victor
    clock.seconds += 0.01
    assert cache.recall("token", NOW) is None
    assert FRESH_SECONDS <= 5


def test_an_entry_is_never_used_past_its_credentials_expiry() -> None:
    cache = PrincipalCache(clock=Clock())
    cache.remember("token", principal(expires_at=NOW + timedelta(seconds=1)), cache.generation)
    assert cache.recall("token", NOW) is not None
    assert cache.recall("token", NOW + timedelta(seconds=1)) is None


def test_a_lookup_that_began_before_a_change_is_not_kept() -> None:
    cache = PrincipalCache(clock=Clock())
    cache.remember("old", principal(), cache.generation)
    began = cache.generation
    cache.forget_all()  # a revocation committed while the lookup was under way
    cache.remember("token", principal(), began)
    assert cache.recall("token", NOW) is None
    assert cache.recall("old", NOW) is None


def test_the_oldest_entry_makes_room_past_the_bound() -> None:
    cache = PrincipalCache(max_entries=2, clock=Clock())
    for token in ("first", "second", "third"):
        cache.remember(token, principal(), cache.generation)
    assert cache.recall("first", NOW) is None
    assert cache.recall("second", NOW) is not None
    assert cache.recall("third", NOW) is not None
    assert PrincipalCache().max_entries == 10_000  # the bound docs/security.md states
