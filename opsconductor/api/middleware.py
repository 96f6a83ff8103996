"""Pure ASGI middleware: request ids, access log, security headers.

Pure ASGI (not BaseHTTPMiddleware) so streamed answers, such as server-sent events, pass through
unbuffered and the per-request cost stays small.
"""

import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsconductor.api.problems import http_error_problem
from opsconductor.logging import request_id_var

access_logger = logging.getLogger("opsconductor.access")

# A caller's id is kept only if it is short and plain, so it cannot forge log lines.
_ACCEPTABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
API_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'"
# The console's pages run only their own scripts and styles (the vendored htmx included);
# they talk to this origin alone.
CONSOLE_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
    "script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'"
)


# Told of every answered request: its scope (with the matched route), status and seconds.
ResponseObserver = Callable[[Scope, int, float], None]


class RequestContextMiddleware:
    """Takes or makes X-Request-ID, returns it, and logs one access line with the duration."""

    def __init__(self, app: ASGIApp, observers: Sequence[ResponseObserver] = ()):
        self.app = app
        self.observers = observers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                # The docs and console pages set their own policy.
                headers.setdefault("Content-Security-Policy", API_CONTENT_SECURITY_POLICY)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            seconds = time.perf_counter() - started
            for observe in self.observers:
                observe(scope, status, seconds)
            access_logger.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "client": _client_address(scope),
                },
            )
            request_id_var.reset(token)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if _ACCEPTABLE_REQUEST_ID.match(candidate) else None
    return None


def _client_address(scope: Scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


class ContentTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than {limit} bytes")


class BodyLimitMiddleware:
    """Refuses request bodies over `limit` bytes with a 413 problem.

    A declared Content-Length over the limit is refused before the app runs; a body sent
    without one is counted as it arrives, and reading past the limit raises ContentTooLarge,
    which the problem handlers render. Either way no more than `limit` bytes are buffered.
    """

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            response = await http_error_problem(Request(scope), ContentTooLarge(self.limit))
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise ContentTooLarge(self.limit)
            return message

        await self.app(scope, counting_receive, send)


# What the Temporal Web UI's codec calls send (ui/src/lib/services/data-encoder.ts): the
# namespace always, JSON, and the UI login's token when passAccessToken is on.
CODEC_CORS_HEADERS = ("Authorization", "Content-Type", "X-Namespace", "X-Request-ID")


class ScopedCorsMiddleware:
    """CORS in two scopes: /codec/* for the Temporal Web UI's origins, the rest of the API for
    cors_origins. The UI's preflight asks for headers (X-Namespace) and a credentials mode
    (includeCredentials) that the rest of the API has no reason to allow, and an origin allowed
    to decode payloads is not thereby allowed to call the API."""

    def __init__(
        self,
        app: ASGIApp,
        codec_prefix: str,
        codec_origins: Sequence[str],
        api_origins: Sequence[str],
    ):
        self.codec_prefix = codec_prefix.rstrip("/") + "/"
        self.codec: ASGIApp = app
        if codec_origins:
            self.codec = CORSMiddleware(
                app,
                allow_origins=codec_origins,
                # The UI's includeCredentials sends cookies (an authenticating proxy's); the
                # browser then reads the answer only if we say credentials are allowed.
                allow_credentials=True,
                allow_methods=["POST", "OPTIONS"],
                allow_headers=CODEC_CORS_HEADERS,
                expose_headers=["X-Request-ID"],
            )
        self.api: ASGIApp = app
        if api_origins:
            self.api = CORSMiddleware(
                app,
                allow_origins=api_origins,
                allow_credentials=True,
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                expose_headers=["X-Request-ID", "Retry-After"],
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope["path"]).startswith(self.codec_prefix):
            await self.codec(scope, receive, send)
        else:
            await self.api(scope, receive, send)
