"""What a list request costs the API in statements, and that the few seconds' memory of who a
token belongs to (services/principal_cache.py) never outlives a revocation in this process."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg.transaction
import fastapi.dependencies.utils
import fastapi.routing
import httpx
import pytest
import sqlmodel._compat
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

from tests.identity_helpers import Account, api, bearer
from tests.sql_helpers import counted_statements
from tests.vault_helpers import post_ok

pytestmark = pytest.mark.integration

# Columns of the rows that say who a token belongs to, as SQLAlchemy names them.
_IDENTITY_COLUMNS = ("auth_sessions.id", "users.id", "api_tokens.id")


def identity_lookups(sent: list[str]) -> list[str]:
    return [text for text in sent if any(column in text for column in _IDENTITY_COLUMNS)]


async def test_a_repeated_list_request_reads_only_its_page(
    http: httpx.AsyncClient, app: FastAPI, viewer: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    begun: list[str] = []
    start = asyncpg.transaction.Transaction.start

    async def counted_start(transaction: asyncpg.transaction.Transaction) -> None:
        begun.append("BEGIN")
        await start(transaction)

    monkeypatch.setattr(asyncpg.transaction.Transaction, "start", counted_start)
    for path in ("/targets", "/runs"):
        first = await http.get(api(path), headers=viewer.headers)
        assert first.status_code == 200, first.text
    # A reading request's statements run without BEGIN and COMMIT (db.create_reading_sessionmaker).
    assert begun == []
    with counted_statements(app) as sent:
        targets = await http.get(api("/targets"), headers=viewer.headers)
    assert targets.status_code == 200
    # The count and the page, whose rows carry their group names (benchmarks/README.md fix 18);
    # who is asking is remembered.
    assert identity_lookups(sent) == []
    assert len(sent) == 2, sent
    with counted_statements(app) as sent:
        runs = await http.get(api("/runs"), headers=viewer.headers)
    assert runs.status_code == 200
    assert identity_lookups(sent) == []
    assert len(sent) == 2, sent
    # A change is always checked against the database.
    with counted_statements(app) as sent:
        profile = await http.patch(
            api("/auth/me"), headers=viewer.headers, json={"display_name": "Victor"}
        )
    assert profile.status_code == 200, profile.text
    assert identity_lookups(sent) != []
    assert begun == ["BEGIN"]


async def test_a_page_of_targets_reads_its_group_names_with_its_rows(
    http: httpx.AsyncClient, app: FastAPI, admin: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's statement carries each row's sorted group names, and each answer is validated
    once, not again by SQLModel's `__init__` (benchmarks/README.md fix 18)."""
    for group in ("web", "db", "edge"):
        await post_ok(http, "/target-groups", admin.headers, {"name": group})
    for name, groups in (("a", ["web", "db"]), ("b", []), ("c", ["edge"])):
        await post_ok(
            http, "/targets", admin.headers, {"name": name, "address": "h.lan", "groups": groups}
        )
    await http.get(api("/targets"), headers=admin.headers)  # the token's lookup, remembered
    validated_again: list[str] = []
    sqlmodel_init = sqlmodel._compat.sqlmodel_init

    def counted_init(*, self: sqlmodel.SQLModel, data: dict[str, Any]) -> None:
        validated_again.append(type(self).__name__)
        sqlmodel_init(self=self, data=data)

    monkeypatch.setattr("sqlmodel.main.sqlmodel_init", counted_init)
    with counted_statements(app) as sent:
        page = await http.get(api("/targets?limit=2"), headers=admin.headers)
    assert page.status_code == 200, page.text
    assert [(item["name"], item["groups"]) for item in page.json()["items"]] == [
        ("a", ["db", "web"]),
        ("b", []),
    ]
    # The count and the page; no statement for the group names.
    assert len(sent) == 2, sent
    assert validated_again == []
    following = await http.get(
        api(f"/targets?limit=2&cursor={page.json()['next']}"), headers=admin.headers
    )
    assert [(item["name"], item["groups"]) for item in following.json()["items"]] == [
        ("c", ["edge"])
    ]


async def test_role_changes_and_revocations_apply_to_the_next_read(
    http: httpx.AsyncClient, admin: Account, viewer: Account
) -> None:
    async def audit_status() -> int:
        return (await http.get(api("/audit"), headers=viewer.headers)).status_code

    assert await audit_status() == 403
    promoted = await http.patch(
        api(f"/users/{viewer.id}"), headers=admin.headers, json={"role": "admin"}
    )
    assert promoted.status_code == 200, promoted.text
    assert await audit_status() == 200
    demoted = await http.patch(
        api(f"/users/{viewer.id}"), headers=admin.headers, json={"role": "viewer"}
    )
    assert demoted.status_code == 200, demoted.text
    assert await audit_status() == 403

    made = await http.post(api("/tokens"), headers=viewer.headers, json={"name": "script"})
    assert made.status_code == 201, made.text
    token = bearer(made.json()["token"])
    assert (await http.get(api("/targets"), headers=token)).status_code == 200
    revoked = await http.delete(api(f"/tokens/{made.json()['id']}"), headers=viewer.headers)
    assert revoked.status_code == 204
    assert (await http.get(api("/targets"), headers=token)).status_code == 401

    assert (await http.get(api("/targets"), headers=viewer.headers)).status_code == 200
    disabled = await http.delete(api(f"/users/{viewer.id}"), headers=admin.headers)
    assert disabled.status_code == 204, disabled.text
    assert (await http.get(api("/targets"), headers=viewer.headers)).status_code == 401


async def test_logging_out_ends_the_session_for_the_next_read(
    http: httpx.AsyncClient, viewer: Account
) -> None:
    assert (await http.get(api("/runs"), headers=viewer.headers)).status_code == 200
    out = await http.post(api("/auth/logout"), headers=viewer.headers)
    assert out.status_code == 204, out.text
    assert (await http.get(api("/runs"), headers=viewer.headers)).status_code == 401


async def test_a_remembered_principal_outlives_the_request_that_failed_after_finding_it(
    http: httpx.AsyncClient, viewer: Account
) -> None:
    # The token's first lookup is made by a read that then fails: its session rolls back,
    # which must not take the remembered user's fields with it (the fuzzer found a 500 here).
    missing = await http.get(api(f"/runs/{uuid.uuid4()}"), headers=viewer.headers)
    assert missing.status_code == 404, missing.text
    me = await http.get(api("/auth/me"), headers=viewer.headers)
    assert me.status_code == 200, me.text
    assert me.json()["username"] == viewer.username


@contextmanager
def counted_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[list[object], list[str]]]:
    """The routes a request was matched against (one entry per try) and the dependencies
    FastAPI solved for it (one entry per dependency, sub-dependencies included)."""
    tried: list[object] = []
    solved: list[str] = []
    matches = APIRoute.matches
    solve = fastapi.dependencies.utils.solve_dependencies

    def counted_matches(route: APIRoute, scope: Scope) -> tuple[Match, Scope]:
        tried.append(route)
        return matches(route, scope)

    async def counted_solve(*, dependant: Dependant, **arguments: Any) -> Any:
        call = dependant.call
        solved.append(getattr(call, "__name__", type(call).__name__))
        return await solve(dependant=dependant, **arguments)

    monkeypatch.setattr(APIRoute, "matches", counted_matches)
    # The handler calls it by its own import; it calls itself for each sub-dependency.
    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counted_solve)
    monkeypatch.setattr(fastapi.dependencies.utils, "solve_dependencies", counted_solve)
    yield tried, solved


async def test_a_list_request_tries_each_route_once_and_solves_few_dependencies(
    http: httpx.AsyncClient, viewer: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What FastAPI does per request before the route runs (benchmarks/README.md fix 14)."""
    await http.get(api("/runs"), headers=viewer.headers)  # the token's lookup, remembered
    with counted_calls(monkeypatch) as (tried, solved):
        answer = await http.get(api("/runs"), headers=viewer.headers)
    assert answer.status_code == 200, answer.text
    # Routes are included into the app, one level: the routers before `runs` are matched
    # once, the chosen router's routes twice (to choose the router, then the route).
    runs_routes = [route for route in tried if getattr(route, "name", "").startswith("run.")]
    others = [route for route in tried if route not in runs_routes]
    assert len(others) == len(set(map(id, others))), "a route was matched twice"
    assert max(runs_routes.count(route) for route in runs_routes) == 2
    # The route, its permission (the principal and the bearer header under it), the page,
    # the API router's two (unstorable text, audit entry), and the session, which the route,
    # the principal and the audit entry each ask for (made once: FastAPI's cache). Nothing
    # else: what only reads the app's state (keys, sessionmaker, client address) is read in
    # place, not solved as a dependency of its own on every request.
    assert sorted(solved) == sorted(
        [
            "list_runs",
            "_authorized",
            "_principal",
            "OAuth2PasswordBearer",  # the bearer header, named in the OpenAPI document
            "_page",
            "refuse_unstorable_text",
            "_audited",
            *["_session"] * 3,
        ]
    ), ", ".join(solved)
