"""A credential's grants and access log on its page (docs/security.md).

The API keeps grants as a whole list (`PUT /credentials/{id}/grants` replaces it), so the
form shows every user and grantable role as a check box, ticked when granted: ticking adds a
grant, unticking revokes it."""

from collections.abc import Mapping
from typing import Any

from opsconductor.console.forms import Choice, Field, Form, Kind
from opsconductor.console.session import Console
from opsconductor.models.credential import GRANTABLE_ROLES, GrantsPublic

# Access-log rows a page.
ACCESSES = 20
# Enough users to choose from; more are granted through the API or the CLI.
USERS = 500


def grants_form(credential: Mapping[str, Any], users: list[Mapping[str, Any]]) -> Form:
    grants = credential["grants"]
    granted = {
        "users": [user["id"] for user in grants["users"]],
        "roles": grants["roles"],
    }
    # Admins use every credential without a grant.
    grantable = [user for user in users if user["role"] != "admin"]
    return Form(
        "grants-form",
        f"/api/v1/credentials/{credential['id']}/grants",
        "Save grants",
        [
            Field(
                "users",
                "Users",
                Kind.choices,
                choices=tuple(Choice(str(u["id"]), u["username"]) for u in grantable),
                cleared="[]",
            ),
            Field(
                "roles",
                "Roles (and every role above)",
                Kind.choices,
                choices=tuple(Choice(role.value, role.value) for role in GRANTABLE_ROLES),
                cleared="[]",
            ),
        ],
        method="PUT",
        legend="Grants: who besides admins may use it",
        item=granted,
        notes=(
            "Tick to grant, untick to revoke. A run uses the credential only if whoever "
            "started it holds a grant, checked at each use.",
        ),
    )


async def grant_forms(console: Console, credential: Mapping[str, Any]) -> list[Form]:
    """The grants form, for those who may change grants and list the users to grant to."""
    if not (console.can("credentials:manage") and console.can("users:read")):
        return []
    users = (await console.get("/users", limit=USERS))["items"]
    return [grants_form(credential, users)]


async def access_log(console: Console, credential: Mapping[str, Any], offset: int) -> Any:
    """One page of the credential's access log, newest first."""
    path = f"/credentials/{credential['id']}/access"
    return await console.get(path, limit=ACCESSES, offset=max(offset, 0))


def granted_to(credential: Mapping[str, Any]) -> str:
    return GrantsPublic.model_validate(credential["grants"]).summary()
