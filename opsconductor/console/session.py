"""Who is looking at a console page, and the API client the page reads through.

The console is a client of the REST API. Pages read through it in process, presenting the
session cookie's access token as a bearer token, so every read is authorized by the same
route dependencies as any other client's; writes are made by the browser itself, against the
same routes (see static/console.js). An expired access token is refreshed here with the
refresh cookie, through the API's own refresh route.
"""

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
from fastapi import Depends, Request, Response

from opsconductor.api.auth import SESSION_COOKIE, from_this_origin
from opsconductor.api.deps import API_PREFIX
from opsconductor.config import Settings
from opsconductor.models.user import Role
from opsconductor.security.csrf import csrf_token
from opsconductor.security.rbac import Permission, allows
from opsconductor.security.tokens import read_access_token

REFRESH_COOKIE = "opsconductor_refresh"


class LoginRequired(Exception):
    """Answered with a redirect to the login page, back to `next` afterwards."""

    def __init__(self, next_path: str):
        self.next_path = next_path


class ApiError(Exception):
    """An API answer the page did not expect, shown with its status and detail."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass
class Console:
    request: Request
    api: httpx.AsyncClient
    me: dict[str, Any]
    session_id: uuid.UUID
    # A refreshed token pair, set as cookies on the page's answer.
    renewed: dict[str, Any] | None = None
    settings: Settings = field(init=False)

    def __post_init__(self) -> None:
        self.settings = self.request.app.state.settings

    @property
    def csrf(self) -> str:
        return csrf_token(self.request.app.state.keys.signing_key, self.session_id)

    def can(self, permission: str) -> bool:
        return allows(Role(self.me["role"]), Permission(permission))

    async def get(self, path: str, **params: Any) -> Any:
        answer = await self.api.get(
            f"{API_PREFIX}{path}", params={k: v for k, v in params.items() if v not in (None, "")}
        )
        return _json(answer)

    async def health(self) -> Any:
        # 503 still carries the report: that is the unhealthy answer, not an error.
        return (await self.api.get("/health")).json()


def _json(answer: httpx.Response) -> Any:
    if answer.is_success:
        return answer.json()
    try:
        detail = str(answer.json().get("detail", answer.text))
    except ValueError:
        detail = answer.text
    raise ApiError(answer.status_code, detail)


def api_client(request: Request, token: str | None) -> httpx.AsyncClient:
    headers = {"X-Request-ID": request.state.request_id}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=request.app),
        base_url="http://console.internal",
        headers=headers,
    )


async def _who(api: httpx.AsyncClient) -> dict[str, Any] | None:
    answer = await api.get(f"{API_PREFIX}/auth/me")
    return answer.json() if answer.status_code == 200 else None


async def _renewed(api: httpx.AsyncClient, refresh_token: str | None) -> dict[str, Any] | None:
    if not refresh_token:
        return None
    answer = await api.post(f"{API_PREFIX}/auth/refresh", json={"refresh_token": refresh_token})
    return answer.json() if answer.status_code == 200 else None


async def _console(request: Request) -> AsyncIterator[Console]:
    next_path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not from_this_origin(request):
        raise LoginRequired(next_path)
    token = request.cookies.get(SESSION_COOKIE)
    async with api_client(request, token) as api:
        me = await _who(api) if token else None
        renewed = None
        if me is None:
            renewed = await _renewed(api, request.cookies.get(REFRESH_COOKIE))
            if renewed is None:
                raise LoginRequired(next_path)
            token = renewed["access_token"]
            api.headers["Authorization"] = f"Bearer {token}"
            me = await _who(api)
            if me is None:
                raise LoginRequired(next_path)
        assert token is not None
        claims = read_access_token(request.app.state.keys.signing_key, token)
        yield Console(request, api, me, claims.session_id, renewed)


ConsoleDep = Annotated[Console, Depends(_console)]


def set_session_cookies(response: Response, request: Request, pair: dict[str, Any]) -> None:
    settings: Settings = request.app.state.settings
    for name, value in (
        (SESSION_COOKIE, pair["access_token"]),
        (REFRESH_COOKIE, pair["refresh_token"]),
    ):
        response.set_cookie(
            name,
            value,
            max_age=settings.refresh_token_days * 86400,
            path="/",
            httponly=True,
            secure=request.url.scheme == "https",
            samesite="strict",
        )


def clear_session_cookies(response: Response) -> None:
    for name in (SESSION_COOKIE, REFRESH_COOKIE):
        response.delete_cookie(name, path="/", httponly=True, samesite="strict")
