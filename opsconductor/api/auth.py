"""Who is asking (authentication), may they (the one `authorized` dependency), and the audit
row every mutating request leaves behind.
"""

from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import OAuth2PasswordBearer, SecurityScopes

from opsconductor.api.deps import API_PREFIX, READING_METHODS, SessionDep, SettingsDep
from opsconductor.config import Settings
from opsconductor.errors import NotAuthenticated, OpsConductorError, PermissionDenied
from opsconductor.models.audit import Outcome
from opsconductor.security.csrf import CSRF_HEADER, csrf_matches
from opsconductor.security.keys import ProcessKeys
from opsconductor.security.rbac import Permission, Principal, allows
from opsconductor.services import audit
from opsconductor.services.audit import AuditEntry
from opsconductor.services.auth import authenticate
from opsconductor.services.sessions import ClientInfo

# OAuth2 password flow, so the docs page's "Authorize" button signs in with a form post.
_bearer = OAuth2PasswordBearer(tokenUrl=f"{API_PREFIX}/auth/login", auto_error=False)

# The console's session: the same access token, in an HttpOnly SameSite=Strict cookie.
SESSION_COOKIE = "opsconductor_session"
LOOPBACK_PEERS = frozenset({"127.0.0.1", "::1"})
# Refusals, as opposed to attempts that went wrong.
_DENIED_STATUSES = frozenset({401, 403, 429})


async def client_info(request: Request) -> ClientInfo:
    # The socket's peer. Behind a proxy named in OPSCONDUCTOR_FORWARDED_ALLOW_IPS, uvicorn has
    # already replaced it with the client the proxy names; nobody else's header is believed.
    return ClientInfo(
        address=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


ClientDep = Annotated[ClientInfo, Depends(client_info)]


async def _principal(
    request: Request,
    session: SessionDep,
    bearer: Annotated[str | None, Depends(_bearer)],
) -> Principal:
    # A bearer header always wins; the cookie is only looked at without one.
    token = bearer or session_cookie(request)
    if not token:
        raise NotAuthenticated()
    # Read here rather than through KeysDep: every dependency FastAPI solves costs every
    # request (benchmarks/README.md fix 14), and this one is on all of them.
    keys: ProcessKeys = request.app.state.keys
    principal = await authenticate(
        session, keys.signing_key, token, reading=request.method in READING_METHODS
    )
    request.state.principal = principal
    # A cookie is sent by the browser on its own; a header only by a page of this origin.
    if (
        not bearer
        and request.method not in READING_METHODS
        and not csrf_matches(
            keys.signing_key, principal.session_id, request.headers.get(CSRF_HEADER)
        )
    ):
        raise PermissionDenied(
            f"a change made with the session cookie needs the {CSRF_HEADER} header"
        )
    return principal


def from_this_origin(request: Request) -> bool:
    """Whether a request may use the console's session cookie: not from another origin.

    SameSite=Strict keeps other sites' requests from carrying the cookie, but another port of
    the same host is the same site: the Temporal Web UI under `up`, which CORS lets read our
    answers. Browsers name the origin of every cross-origin request, so one naming another
    origin is answered as if it carried no cookie.
    """
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


def session_cookie(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) if from_this_origin(request) else None


async def _authorized(
    security_scopes: SecurityScopes, principal: Annotated[Principal, Depends(_principal)]
) -> Principal:
    for needed in security_scopes.scopes:
        if not allows(principal.role, Permission(needed)):
            raise PermissionDenied(f"the {principal.role} role lacks the {needed} permission")
    return principal


def authorized(permission: Permission) -> Any:
    """The one way a route declares what it needs: `Annotated[Principal, authorized(...)]`.

    A security scope rather than a plain dependency, so the OpenAPI document states each
    operation's permission (and a test can read it there).
    """
    return Security(_authorized, scopes=[permission.value])


def _trusted_ui_call(request: Request, settings: Settings) -> bool:
    """A codec call from the dev Web UI, which has no login: loopback peer, known origin."""
    peer = request.client.host if request.client else ""
    return (
        settings.codec_trust_loopback_ui
        and peer in LOOPBACK_PEERS
        and request.headers.get("origin") in settings.codec_cors_origins
    )


async def _codec_caller(
    security_scopes: SecurityScopes,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    bearer: Annotated[str | None, Depends(_bearer)],
) -> Principal | None:
    if not bearer and _trusted_ui_call(request, settings):
        return None
    return await _authorized(security_scopes, await _principal(request, session, bearer))


def codec_caller(permission: Permission) -> Any:
    """Like `authorized`, but under `up` also admits the dev Web UI (see _trusted_ui_call)."""
    return Security(_codec_caller, scopes=[permission.value])


async def _audited(request: Request, session: SessionDep) -> AsyncIterator[AuditEntry]:
    """Installed with every API router (app.py), so no mutating route can forget its audit row.

    The action is the route's name ("user.create"); a route adds the resource id or the
    actor when it learns them. Success is recorded in the request's transaction, so the row
    exists exactly when the change does; a failure or refusal in a transaction of its own,
    because the request's is rolled back. The client and the sessionmaker are read here, not
    through dependencies of their own: this one runs on every request, reads included, and
    each dependency solved costs each request (benchmarks/README.md fix 14).
    """
    route = request.scope["route"]
    assert isinstance(route, APIRoute)
    entry = AuditEntry.for_action(
        route.name,
        resource_id=request.path_params.get("id"),
        request_id=getattr(request.state, "request_id", None),
        client_address=(await client_info(request)).address,
    )
    if request.method in READING_METHODS:
        yield entry
        return
    try:
        yield entry
    except Exception as error:
        status = _status_of(error)
        _take_actor(request, entry)
        entry.detail["status"] = status
        outcome = Outcome.denied if status in _DENIED_STATUSES else Outcome.failure
        await audit.record_separately(request.app.state.sessionmaker, entry, outcome)
        raise
    _take_actor(request, entry)
    audit.record(session, entry, Outcome.success)


def _take_actor(request: Request, entry: AuditEntry) -> None:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is not None and entry.actor_id is None:
        entry.by(principal.user)


def _status_of(error: Exception) -> int:
    if isinstance(error, OpsConductorError):
        return error.status
    return 422 if isinstance(error, RequestValidationError) else 500


# Installed with every API router (app.py); a route that wants to add to its row takes AuditDep,
# which resolves (through the dependency cache) to the same entry.
AUDITED = Depends(_audited, scope="function")
AuditDep = Annotated[AuditEntry, AUDITED]
