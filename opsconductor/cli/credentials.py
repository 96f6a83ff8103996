"""`opsconductor credentials …`: list credentials with who may use them; grant and revoke use
(docs/security.md). Grants are managed by admins through the API, like every change here."""

from pathlib import Path
from typing import Annotated, Any

import typer

from opsconductor.cli.client import CliError, connect, find_listed, reports_errors
from opsconductor.cli.operations import show_list
from opsconductor.cli.output import OutputFormat, OutputOption, field, print_json, short_time
from opsconductor.cli.secret_refs import CREDENTIAL_SECRET_FIELDS, resolve

app = typer.Typer(
    no_args_is_help=True, help="List credentials, rotate a secret, grant and revoke its use."
)

CredentialName = Annotated[str, typer.Argument(help="The credential's name or id.")]
UserOption = Annotated[
    str | None, typer.Option("--user", help="A username: that user may use the credential.")
]
# The roles a grant may name: admins use every credential without one.
GRANTABLE_ROLES = ("operator", "viewer")
RoleOption = Annotated[
    str | None,
    typer.Option("--role", help="operator or viewer: users of that role or above may use it."),
]


def _grantees(grants: dict[str, Any]) -> str:
    """One line: `user:olivia, role:operator` (the API's GrantsPublic, read without importing
    the server's models, which would slow every client command down)."""
    grantees = [f"user:{user['username']}" for user in grants["users"]]
    grantees += [f"role:{role}" for role in grants["roles"]]
    return ", ".join(grantees) or "admins only"


@app.command("list")
@reports_errors
def list_credentials(output: OutputOption = OutputFormat.table) -> None:
    """List credentials and who besides admins may use each."""
    show_list(
        "/credentials",
        output,
        [
            field("name"),
            field("kind"),
            field("username"),
            ("ROTATED", lambda row: short_time(row["rotated_at"])),
            ("TARGETS", lambda row: [target["name"] for target in row["targets"]]),
            ("USABLE BY", lambda row: _grantees(row["grants"])),
        ],
    )


def _change(
    reference: str, user: str | None, role: str | None, add: bool, output: OutputFormat
) -> None:
    if (user is None) == (role is None):
        raise CliError("give exactly one of --user or --role")
    if role is not None and role not in GRANTABLE_ROLES:
        raise CliError("admins use every credential; grant operator or viewer")
    with connect() as client:
        credential = find_listed(client, "/credentials", reference, "credential")
        grants = client.get(f"/credentials/{credential['id']}/grants")
        users = {item["id"] for item in grants["users"]}
        roles = set(grants["roles"])
        if role is not None:
            roles = roles | {role} if add else roles - {role}
        else:
            user_id = find_listed(client, "/users", str(user), "user", "username")["id"]
            users = users | {user_id} if add else users - {user_id}
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


@app.command("rotate")
@reports_errors
def rotate(
    reference: CredentialName,
    secret: Annotated[
        list[str],
        typer.Option(
            "--secret",
            "-s",
            help="FIELD=env:VARIABLE or FIELD=file:PATH (e.g. password=env:NEW_PASSWORD).",
        ),
    ],
    output: OutputOption = OutputFormat.table,
) -> None:
    """Replace a credential's secret; the value is read from a variable or file, never from the
    command line (which shell history and the process list keep)."""
    fields: dict[str, str] = {}
    for item in secret:
        field, _, spec = item.partition("=")
        source, _, value = spec.partition(":")
        if not field or source not in ("env", "file") or not value:
            raise CliError(f"--secret {field or item}: write FIELD=env:VARIABLE or FIELD=file:PATH")
        resolved = resolve({source: value}, f"--secret {field}", Path.cwd(), allow_inline=False)
        if resolved is not None:
            fields[field] = resolved
    with connect() as client:
        credential = find_listed(client, "/credentials", reference, "credential")
        known = CREDENTIAL_SECRET_FIELDS.get(credential["kind"], ())
        unknown = [field for field in fields if field not in known]
        if unknown:
            raise CliError(
                f"a {credential['kind']} credential has no secret field {unknown[0]!r}",
                [f"its fields: {', '.join(known)}"],
            )
        answer = client.post(f"/credentials/{credential['id']}/rotate", {"secret": fields})
    if output is OutputFormat.json:
        print_json(answer)
    else:
        typer.echo(f"credential {answer['name']}: secret rotated")
