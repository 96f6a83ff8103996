"""Users (admins create them, change their role, disable them and issue reset links), one's
own account (profile, password, sessions, API tokens), "forgot password" (the page that asks
for a link, the one the link opens, and the admins' choice of the email channel that sends it).

Secrets pass through the browser once: a new API token and a reset link are shown in the
answer of the call that made them and never again (the API keeps only their hashes)."""

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from opsconductor.console.forms import Choice, Field, Form, Kind
from opsconductor.console.manage import CHOICES, creating
from opsconductor.console.pages import html, page
from opsconductor.console.session import ConsoleDep, clear_session_cookies
from opsconductor.models.user import Role
from opsconductor.services.password_recovery import EMAIL_SCHEMES

router = APIRouter(include_in_schema=False)

MANAGER = "users:manage"
ROLES = tuple(Choice(role.value, role.value) for role in Role)
# Where a reset link leads; the token follows in the fragment, which browsers never send to
# a server, so it stays out of access logs and Referer headers.
RESET_PAGE = "/reset-password"
FORGOT_PAGE = "/forgot-password"

# The one password policy is the API's (models/user.py Password); this only says it.
NEW_PASSWORD = Field(
    "new_password", "New password", Kind.password, "at least 12 characters", required=True
)

# -- users (admins) ------------------------------------------------------------------------------


def _profile_fields() -> list[Field]:
    return [
        Field(
            "display_name",
            "Display name",
            hint="shown in the console's header instead of the username",
            cleared='""',
        ),
        Field("email", "Email", required=True),
    ]


def user_form(item: Mapping[str, Any] | None = None) -> Form:
    role = Field("role", "Role", Kind.select, choices=ROLES)
    if item is None:
        return Form(
            "user-form",
            "/api/v1/users",
            "Create user",
            [
                Field("username", "Username", hint="lower case, digits, . _ -", required=True),
                *_profile_fields(),
                role,
                Field(
                    "password",
                    "Initial password",
                    Kind.password,
                    "at least 12 characters; or issue them a reset link from their page",
                    required=True,
                ),
            ],
            next="/users/{id}",
            notes=("The password is never shown again, here or through the API.",),
        )
    return Form(
        "user-form",
        f"/api/v1/users/{item['id']}",
        "Save",
        [
            *_profile_fields(),
            role,
            Field("disabled", "Disabled: cannot sign in, and their sessions end", Kind.checkbox),
        ],
        "PATCH",
        "",
        "Edit",
        item,
    )


@router.get("/users/new")
async def new_user(console: ConsoleDep) -> HTMLResponse:
    return creating(console, "user", MANAGER, user_form())


@router.get("/users/{user_id}")
async def user_page(user_id: uuid.UUID, console: ConsoleDep) -> HTMLResponse:
    item = await console.get(f"/users/{user_id}")
    return page(
        console,
        "user.html",
        title=f"User {item['username']}",
        manager=MANAGER,
        item=item,
        facts=_facts(item),
        forms=[user_form(item)],
        password_reset=f"/api/v1/users/{user_id}/password-reset",
        reset_link=str(console.request.base_url).rstrip("/") + RESET_PAGE + "#token=",
        back=("Users", "/lists/users"),
    )


def _facts(user: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "display name": user["display_name"],
        "email": user["email"],
        "role": user["role"],
        "state": "disabled" if user["disabled"] else "enabled",
        "last login": user["last_login_at"],
    }


# -- your own account ----------------------------------------------------------------------------


def profile_form(me: Mapping[str, Any]) -> Form:
    return Form(
        "profile-form",
        "/api/v1/auth/me",
        "Save profile",
        _profile_fields(),
        "PATCH",
        "",
        "Profile",
        me,
    )


def password_form() -> Form:
    return Form(
        "password-form",
        "/api/v1/auth/password",
        "Change password",
        [
            Field("current_password", "Current password", Kind.password, required=True),
            NEW_PASSWORD,
        ],
        legend="Password",
        notes=("Your other sessions end; this one and your API tokens stay.",),
    )


def token_form(role: str) -> Form:
    allowed = [choice for choice in ROLES if _rank(choice.value) <= _rank(role)]
    return Form(
        "token-form",
        "/api/v1/tokens",
        "Create token",
        [
            Field("name", "Token name", hint="what uses it, e.g. ci", required=True),
            Field(
                "role",
                "Token role",
                Kind.select,
                "never above your own",
                (Choice("", f"your role ({role})"), *allowed),
            ),
            Field("expires_in_days", "Expires in days", Kind.integer, "empty: never"),
        ],
        legend="New API token",
        show="token-result",
    )


def _rank(role: str) -> int:
    return list(Role).index(Role(role))


@router.get("/account")
async def account_page(console: ConsoleDep) -> HTMLResponse:
    sessions = (await console.get("/auth/sessions", limit=CHOICES))["items"]
    tokens = (await console.get("/tokens", limit=CHOICES))["items"]
    me = console.me
    return page(
        console,
        "account.html",
        title="Your account",
        facts={"username": me["username"], **_facts(me)},
        forms=[profile_form(me), password_form()],
        token_form=token_form(me["role"]),
        sessions=sessions,
        tokens=tokens,
    )


# -- the page a reset link opens -----------------------------------------------------------------


def reset_form() -> Form:
    return Form(
        "reset-password-form",
        "/api/v1/auth/password-reset",
        "Set password",
        [
            Field("token", "Reset token", Kind.password, "filled in from the link", required=True),
            NEW_PASSWORD,
        ],
        next="/login",
        notes=("The link works once. Afterwards, sign in with the new password.",),
    )


@router.get(RESET_PAGE)
async def reset_password_page(request: Request) -> HTMLResponse:
    """Open to anyone: the token is the authority. A link carries it in the fragment, which
    console.js copies into the token field."""
    response = html(request, "reset_password.html", {"form": reset_form()})
    # Whoever was signed in here is not who is choosing this password.
    clear_session_cookies(response)
    return response


# -- "forgot password" ---------------------------------------------------------------------------


def forgot_form() -> Form:
    return Form(
        "forgot-password-form",
        "/api/v1/auth/forgot-password",
        "Send me a reset link",
        [Field("login", "Username or email", required=True)],
        notes=(
            "If an email channel is set up for password resets, a one-time link is mailed to"
            " the account's address. Otherwise ask an admin for one.",
        ),
        show="forgot-result",
    )


@router.get(FORGOT_PAGE)
async def forgot_password_page(request: Request) -> HTMLResponse:
    """Open to anyone. The API answers every name alike, so the page can only say that a link
    is on its way if the account exists: it never learns whether it does."""
    return html(request, "forgot_password.html", {"form": forgot_form()})


def password_reset_settings_form(
    channels: Sequence[Mapping[str, Any]], chosen: Mapping[str, Any]
) -> Form:
    mail = [Choice(str(c["id"]), c["name"]) for c in channels if c["scheme"] in EMAIL_SCHEMES]
    return Form(
        "password-reset-settings-form",
        "/api/v1/settings/password-reset",
        "Save",
        [
            Field(
                "channel_id",
                "Email channel",
                Kind.select,
                "only email (mailto://) channels can send a link to a user's own address",
                (Choice("", "off: only admins issue reset links"), *mail),
                cleared="null",
            )
        ],
        "PUT",
        "",
        "Password resets",
        chosen,
        notes=('"Forgot password?" on the sign-in page mails a one-time link through this.',),
    )


@router.get("/settings")
async def settings_page(console: ConsoleDep) -> HTMLResponse:
    chosen = await console.get("/settings/password-reset")
    channels = (await console.get("/notification-channels", limit=CHOICES))["items"]
    return page(
        console,
        "manage.html",
        title="Settings",
        manager=MANAGER,
        item=chosen,
        facts={"password reset links by email": chosen["channel_name"] or "off"},
        forms=[password_reset_settings_form(channels, chosen)],
        back=("Dashboard", "/"),
    )
