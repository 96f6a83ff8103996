"""`opsconductor credentials …`: list credentials with who may use them; grant and revoke use
(docs/security.md). Grants are managed by admins through the API, like every change here."""

from typing import Annotated, Any

import typer

from opsconductor.cli.client import ApiClient, CliError, connect, reports_errors
from opsconductor.cli.output import OutputFormat, OutputOption, print_json, show
from opsconductor.models.credential import GRANTABLE_ROLES, GrantsPublic
from opsconductor.models.user import Role

app = typer.Typer(no_args_is_help=True, help="List credentials; grant and revoke their use.")

CredentialName = Annotated[str, typer.Argument(help="The credential's name or id.")]
UserOption = Annotated[
    str | None, typer.Option("--user", help="A username: that user may use the credential.")
]
RoleOption = Annotated[
    Role | None,
    typer.Option("--role", help="operator or viewer: users of that role or above may use it."),
]
PAGE = 500


def _listed(client: ApiClient, path: str, reference: str, *keys: str) -> dict[str, Any]:
    offset = 0
    while True:
        page = client.get(path, limit=PAGE, offset=offset)
        for item in page["items"]:
            if reference in (item["id"], *(item[key] for key in keys)):
                found: dict[str, Any] = item
                return found
        offset += PAGE
        if offset >= page["total"]:
            raise CliError(f"no {path.strip('/')[:-1]} named {reference!r}")


def _grantees(grants: dict[str, Any]) -> str:
    return GrantsPublic.model_validate(grants).summary()


@app.command("list")
@reports_errors
def list_credentials(output: OutputOption = OutputFormat.table) -> None:
    """List credentials and who besides admins may use each."""
    with connect() as client:
        page = client.get("/credentials", limit=PAGE)
    show(
        page,
        output,
        page["items"],
        [
            ("NAME", lambda row: row["name"]),
            ("KIND", lambda row: row["kind"]),
            ("USABLE BY", lambda row: _grantees(row["grants"])),
        ],
    )


def _change(
    reference: str, user: str | None, role: Role | None, add: bool, output: OutputFormat
) -> None:
    if (user is None) == (role is None):
        raise CliError("give exactly one of --user or --role")
    if role is not None and role not in GRANTABLE_ROLES:
        raise CliError("admins use every credential; grant operator or viewer")
    with connect() as client:
        credential = _listed(client, "/credentials", reference, "name")
        grants = client.get(f"/credentials/{credential['id']}/grants")
        users = {item["id"] for item in grants["users"]}
        roles = set(grants["roles"])
        if user is not None:
            user_id = _listed(client, "/users", user, "username")["id"]
            users = users | {user_id} if add else users - {user_id}
        else:
            roles = roles | {role} if add else roles - {role}
        answer = client.request(
            "PUT",
            f"/credentials/{credential['id']}/grants",
            json_body={"users": sorted(users), "roles": sorted(roles)},
        ).json()
    if output is OutputFormat.json:
        print_json(answer)
    else:
        typer.echo(f"credential {credential['name']}: usable by {_grantees(answer)}")


@app.command("grant")
@reports_errors
def grant(
    reference: CredentialName,
    user: UserOption = None,
    role: RoleOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Let a user, or everyone of a role or above, use the credential in jobs and targets."""
    _change(reference, user, role, True, output)


@app.command("revoke")
@reports_errors
def revoke(
    reference: CredentialName,
    user: UserOption = None,
    role: RoleOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Take a grant back; runs that have not yet decrypted the credential are refused."""
    _change(reference, user, role, False, output)
