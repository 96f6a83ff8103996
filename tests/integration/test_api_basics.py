"""What every answer of the API has in common: request ids, problem+json errors, headers, and
a unit of work per request that commits on success and rolls back on error."""

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, Field
from sqlmodel import select

from opsconductor.api.app import create_app
from opsconductor.api.deps import SessionDep
from opsconductor.db import create_engine, create_reading_sessionmaker, create_sessionmaker
from opsconductor.errors import Conflict
from opsconductor.models.user import Role, User, UserCreate
from opsconductor.services.users import create_user, get_by_username
from tests.conftest import make_settings
from tests.identity_helpers import Account, api

T = TypeVar("T")

pytestmark = pytest.mark.integration


class Probe(BaseModel):
    name: str = Field(min_length=3)
    count: int = Field(ge=1)


def add_test_routes(app: FastAPI) -> None:
    """Routes that exercise the shared machinery; the product's own routes come later."""

    @app.post("/test/echo")
    async def echo(probe: Probe) -> Probe:
        return probe

    @app.post("/test/users/{username}")
    async def make_user(username: str, session: SessionDep, fail: bool = False) -> dict[str, str]:
        user = await create_user(
            session,
            UserCreate(
                username=username,
                email=f"{username}@example.com",
                role=Role.viewer,
                password="a-long-enough-password",
            ),
        )
        if fail:
            raise Conflict("asked to fail after writing")
        return {"id": str(user.id)}

    @app.get("/test/crash")
    async def crash() -> None:
        raise RuntimeError("internal detail that must not leak")

    @app.get("/test/users")
    async def list_users(session: SessionDep) -> list[str]:
        result = await session.exec(select(User.username))
        return list(result.all())


@pytest.fixture
def app(app: FastAPI) -> FastAPI:
    add_test_routes(app)
    return app


async def test_request_id_is_generated_and_returned(http: httpx.AsyncClient) -> None:
    first = await http.get("/health")
    second = await http.get("/health")
    assert len(first.headers["X-Request-ID"]) == 32
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


async def test_a_callers_request_id_is_kept_unless_it_is_unsafe(
    http: httpx.AsyncClient,
) -> None:
    kept = await http.get("/health", headers={"X-Request-ID": "trace-abc.123"})
    assert kept.headers["X-Request-ID"] == "trace-abc.123"
    forged = await http.get("/health", headers={"X-Request-ID": "x\nlevel=ERROR fake"})
    assert forged.headers["X-Request-ID"] != "x\nlevel=ERROR fake"


async def test_security_headers_on_every_answer(http: httpx.AsyncClient) -> None:
    for path in ("/health", "/no/such/path"):
        answer = await http.get(path)
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]


async def test_validation_errors_are_problems_naming_each_field(
    http: httpx.AsyncClient,
) -> None:
    answer = await http.post(
        "/test/echo", json={"name": "x", "count": 0}, headers={"X-Request-ID": "req-42"}
    )
    assert answer.status_code == 422
    assert answer.headers["Content-Type"] == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == 422
    assert problem["title"] == "Validation failed"
    assert problem["request_id"] == "req-42"
    paths = {error["path"] for error in problem["errors"]}
    assert paths == {"body.name", "body.count"}
    assert "body.name" in problem["detail"]


async def test_malformed_json_is_a_4xx_problem(http: httpx.AsyncClient) -> None:
    answer = await http.post(
        "/test/echo", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["type"] == "json_invalid"


async def test_unknown_route_and_method_are_problems(http: httpx.AsyncClient) -> None:
    missing = await http.get("/no/such/path")
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/problem+json"
    assert missing.json()["type"].endswith("/not-found")
    wrong_method = await http.delete("/health")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["status"] == 405


async def test_unexpected_errors_answer_500_with_request_id_and_log_the_stack(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    # The server re-raises after answering (so its own log has the stack); a real client
    # only sees the answer, which is what this transport shows.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with caplog.at_level(logging.ERROR):
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            answer = await http.get("/test/crash", headers={"X-Request-ID": "req-crash"})
    assert answer.status_code == 500
    problem = answer.json()
    assert problem["request_id"] == "req-crash"
    assert answer.headers["X-Request-ID"] == "req-crash"
    assert "internal detail" not in answer.text
    assert "Traceback" not in answer.text
    stacks = [record.exc_info[1] for record in caplog.records if record.exc_info]
    assert any("internal detail" in str(error) for error in stacks)


async def test_a_request_commits_its_work_on_success(http: httpx.AsyncClient, app: FastAPI) -> None:
    answer = await http.post("/test/users/alice")
    assert answer.status_code == 200
    async with app.state.sessionmaker() as session:
        stored = await get_by_username(session, "alice")
    assert stored is not None
    assert str(stored.id) == answer.json()["id"]


async def test_a_failed_request_rolls_back_everything_it_wrote(
    http: httpx.AsyncClient,
) -> None:
    answer = await http.post("/test/users/bob", params={"fail": "true"})
    assert answer.status_code == 409
    assert answer.json()["detail"] == "asked to fail after writing"
    usernames = (await http.get("/test/users")).json()
    assert "bob" not in usernames
    assert usernames == ["admin"]


async def test_database_down_answers_503_problem(tmp_path: Path, temporal_address: str) -> None:
    settings = make_settings(
        tmp_path,
        database_url="postgresql+asyncpg://nobody:nothing@127.0.0.1:9/none",
        temporal_address=temporal_address,
    )
    app = create_app(settings)
    add_test_routes(app)
    # The lifespan would fail to bootstrap the admin; a request against a dead database is
    # what we are testing, so the app's resources are opened by hand.
    app.state.settings = settings
    app.state.engine = create_engine(settings)
    app.state.sessionmaker = create_sessionmaker(app.state.engine)
    app.state.reading_sessionmaker = create_reading_sessionmaker(app.state.engine)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        answer = await http.get("/test/users")
    await app.state.engine.dispose()
    assert answer.status_code == 503
    assert answer.headers["Retry-After"]
    assert answer.json()["detail"] == "the database is unreachable; retry shortly"
    assert "nothing" not in answer.text


async def test_openapi_document_and_docs_are_served(http: httpx.AsyncClient) -> None:
    document = (await http.get("/openapi.json")).json()
    assert document["info"]["title"] == "OpsConductor"
    assert "/health" in document["paths"]
    docs = await http.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


async def test_cors_answers_only_configured_origins(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(
        tmp_path,
        database_url=database_url,
        temporal_address="127.0.0.1:1",
        cors_origins=["http://localhost:8233"],
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        allowed = await http.options(
            "/health",
            headers={"Origin": "http://localhost:8233", "Access-Control-Request-Method": "GET"},
        )
        refused = await http.options(
            "/health",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
        )
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://localhost:8233"
    assert "Access-Control-Allow-Origin" not in refused.headers


async def test_list_requests_hand_nothing_to_the_thread_pool(
    http: httpx.AsyncClient, accounts: dict[str, Account], monkeypatch: pytest.MonkeyPatch
) -> None:
    """FastAPI runs a plain `def` dependency or endpoint in its thread pool: a thread hop per
    call. The list endpoints (authentication, paging, the session included) make none."""
    hops: list[str] = []
    hand_over = anyio.to_thread.run_sync

    async def counted(function: Callable[..., T], *args: Any, **options: Any) -> T:
        called = getattr(function, "func", function)  # through functools.partial
        hops.append(getattr(called, "__qualname__", repr(called)))
        return await hand_over(function, *args, **options)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    for path in ("/runs", "/targets", "/jobs"):
        response = await http.get(api(path), headers=accounts["viewer"].headers)
        assert response.status_code == 200, response.text

    assert hops == []
