"""The web console: server-rendered pages at `/`, shipped in the package (see docs/console.md)."""

from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from opsconductor.console import (
    accounts,
    channels,
    discovery,
    libraries,
    manage,
    notifications,
    schedules,
    triggers,
)
from opsconductor.console.pages import html, router
from opsconductor.console.session import ApiError, LoginRequired

STATIC = Path(__file__).parent / "static"


async def _login_required(request: Request, error: Exception) -> Response:
    assert isinstance(error, LoginRequired)
    if request.headers.get("HX-Request"):
        # htmx follows redirects inside the element it swaps; send the whole page instead.
        return Response(status_code=204, headers={"HX-Redirect": "/login"})
    return RedirectResponse(f"/login?{urlencode({'next': error.next_path})}", status_code=303)


async def _api_error(request: Request, error: Exception) -> HTMLResponse:
    assert isinstance(error, ApiError)
    return html(request, "error.html", {"error": error}, status=error.status)


def install_console(app: FastAPI) -> None:
    # Before the pages' router: it answers /lists/libraries, the list's former address.
    app.include_router(libraries.router)
    app.include_router(router)
    app.include_router(manage.router)
    app.include_router(triggers.router)
    app.include_router(channels.router)
    app.include_router(accounts.router)
    app.include_router(schedules.router)
    app.include_router(discovery.router)
    app.include_router(notifications.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(ApiError, _api_error)
