"""Signing in and out, refreshing, one's own sessions and password."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from opsconductor.api.auth import AuditDep, ClientDep
from opsconductor.api.deps import (
    KeysDep,
    PageDep,
    SessionDep,
    SessionmakerDep,
    SettingsDep,
    WorkflowsDep,
)
from opsconductor.api.permissions import Account
from opsconductor.errors import BadRequest, FieldProblem, InputInvalid
from opsconductor.models.base import utcnow
from opsconductor.models.page import Page
from opsconductor.models.session import LoginRequest, RefreshRequest, SessionPublic, TokenPair
from opsconductor.models.settings import ForgotPassword, ForgotPasswordAccepted
from opsconductor.models.user import (
    PasswordChange,
    PasswordResetRedeem,
    ProfileUpdate,
    User,
    UserPublic,
)
from opsconductor.services import auth, password_recovery, sessions, users

router = APIRouter(prefix="/auth", tags=["auth"])


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_LOGIN_SCHEMA = LoginRequest.model_json_schema()
_LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {kind: {"schema": _LOGIN_SCHEMA} for kind in ("application/json", *_FORM_TYPES)},
    }
}


async def _credentials(request: Request) -> LoginRequest:
    """JSON for programs, a form post for the docs page's OAuth2 password flow."""
    try:
        if request.headers.get("content-type", "").startswith(_FORM_TYPES):
            data: object = dict(await request.form())
        else:
            data = await request.json()
        return LoginRequest.model_validate(data)
    except ValidationError as error:
        raise RequestValidationError(
            [{**item, "loc": ("body", *item["loc"])} for item in error.errors(include_url=False)]
        ) from None
    except ValueError:
        raise InputInvalid(
            "the body is neither JSON nor a form",
            [FieldProblem("body", "expected JSON or a form", "body_unreadable")],
        ) from None


@router.post("/login", name="session.login", openapi_extra=_LOGIN_BODY)
async def login(
    credentials: Annotated[LoginRequest, Depends(_credentials)],
    session: SessionDep,
    sessionmaker: SessionmakerDep,
    settings: SettingsDep,
    keys: KeysDep,
    client: ClientDep,
    entry: AuditDep,
) -> TokenPair:
    return await auth.login(
        session, sessionmaker, settings, keys.signing_key, credentials, client, entry
    )


@router.post("/refresh", name="session.refresh")
async def refresh(
    body: RefreshRequest,
    session: SessionDep,
    sessionmaker: SessionmakerDep,
    settings: SettingsDep,
    keys: KeysDep,
    entry: AuditDep,
) -> TokenPair:
    return await auth.refresh(
        session, sessionmaker, settings, keys.signing_key, body.refresh_token, entry
    )


@router.post("/logout", name="session.logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(principal: Account, session: SessionDep, entry: AuditDep) -> None:
    if principal.session_id is None:
        raise BadRequest("API tokens have no session; revoke them with DELETE /tokens/{id}")
    entry.on("session", principal.session_id)
    await sessions.revoke_sessions(
        session,
        user_id=principal.user.id,
        only=principal.session_id,
        reason="logged out",
        now=utcnow(),
    )


@router.get("/me", name="user.me", response_model=UserPublic)
async def me(principal: Account) -> User:
    return principal.user


@router.patch("/me", name="user.profile_update", response_model=UserPublic)
async def update_profile(
    body: ProfileUpdate, principal: Account, session: SessionDep, entry: AuditDep
) -> User:
    entry.on("user", principal.user.id)
    entry.detail["fields"] = sorted(body.model_fields_set)
    return await users.update_profile(session, principal.user, body, utcnow())


@router.get("/sessions", name="session.list")
async def list_sessions(
    principal: Account, session: SessionDep, page: PageDep
) -> Page[SessionPublic]:
    return await sessions.list_active(
        session, principal.user.id, principal.session_id, utcnow(), page
    )


@router.delete("/sessions/{id}", name="session.revoke", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_session(id: uuid.UUID, principal: Account, session: SessionDep) -> None:
    now = utcnow()
    await sessions.get_own_active(session, principal.user.id, id, now)
    await sessions.revoke_sessions(
        session, user_id=principal.user.id, only=id, reason="revoked by its user", now=now
    )


@router.post("/password", name="user.password_change", status_code=status.HTTP_204_NO_CONTENT)
async def change_password(
    body: PasswordChange, principal: Account, session: SessionDep, entry: AuditDep
) -> None:
    entry.on("user", principal.user.id)
    if not await users.password_matches(principal.user, body.current_password):
        raise InputInvalid(
            "the current password is not correct",
            [FieldProblem("body.current_password", "is not correct")],
        )
    await users.set_password(
        session, principal.user, body.new_password, utcnow(), keep_session=principal.session_id
    )


@router.post(
    "/password-reset", name="user.password_reset_redeem", status_code=status.HTTP_204_NO_CONTENT
)
async def redeem_password_reset(
    body: PasswordResetRedeem, session: SessionDep, entry: AuditDep
) -> None:
    user = await users.redeem_password_reset(session, body.token, body.new_password, utcnow())
    entry.by(user)
    entry.on("user", user.id)


@router.post("/forgot-password", name="user.password_forgot", status_code=status.HTTP_202_ACCEPTED)
async def forgot_password(
    body: ForgotPassword,
    session: SessionDep,
    sessionmaker: SessionmakerDep,
    settings: SettingsDep,
    workflows: WorkflowsDep,
    client: ClientDep,
) -> ForgotPasswordAccepted:
    """The same answer whether or not the account exists (see services/password_recovery.py)."""
    await password_recovery.request_reset(
        session, sessionmaker, settings, workflows, body.login, client.address, utcnow()
    )
    return ForgotPasswordAccepted(
        detail="If an account with that username or email has an email address, a reset link"
        " is on its way to it."
    )
