"""The interactive API docs, /docs (Swagger UI) and /redoc, served entirely from this origin:
their scripts and styles are vendored in api/static (see its README), never a CDN's. Each page's
Content-Security-Policy admits our own files and, by hash, the page's inline initialiser."""

import base64
import hashlib
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
STATIC_PREFIX = "/docs/static"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def content_security_policy(html: str) -> str:
    """Our files, the page's own inline scripts by hash, inline styles (both UIs set element
    styles from script), data: images (Swagger UI's icons), and the API on this origin."""
    hashes = "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    return (
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
        f"script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; worker-src 'self' blob:"
    )


def _served(response: HTMLResponse) -> Callable[[], Awaitable[HTMLResponse]]:
    """A route answering the page with the policy its own inline scripts need."""
    html = bytes(response.body).decode()
    headers = {"Content-Security-Policy": content_security_policy(html)}

    async def serve() -> HTMLResponse:
        return HTMLResponse(html, headers=headers)

    return serve


def install_docs(app: FastAPI, openapi_url: str) -> None:
    """/docs, its OAuth2 redirect, /redoc and their static files (outside the OpenAPI schema)."""
    title = f"{app.title} API"
    swagger = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=title,
        swagger_js_url=f"{STATIC_PREFIX}/swagger-ui-bundle.js",
        swagger_css_url=f"{STATIC_PREFIX}/swagger-ui.css",
        swagger_favicon_url=f"{STATIC_PREFIX}/favicon-32x32.png",
        oauth2_redirect_url=OAUTH2_REDIRECT,
    )
    redoc = get_redoc_html(
        openapi_url=openapi_url,
        title=title,
        redoc_js_url=f"{STATIC_PREFIX}/redoc.standalone.js",
        redoc_favicon_url=f"{STATIC_PREFIX}/favicon-32x32.png",
        with_google_fonts=False,
    )
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC), name="docs-static")
    redirect = get_swagger_ui_oauth2_redirect_html()
    pages = {"/docs": swagger, OAUTH2_REDIRECT: redirect, "/redoc": redoc}
    for path, page in pages.items():
        app.add_api_route(path, _served(page), methods=["GET"], include_in_schema=False)
