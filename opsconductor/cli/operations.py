"""Client commands for what is not configuration (configuration goes through `apply`):
`credentials list|rotate`, `groups list|show`, `discovery scan|show|import`,
`channels list|test`, `tokens list|revoke` and `users list`. Each takes `-o json`."""

from collections.abc import Sequence
from typing import Annotated, Any

import typer

from opsconductor.cli.client import CliError, connect, find_listed, reports_errors
from opsconductor.cli.output import (
    Column,
    OutputFormat,
    OutputOption,
    field,
    print_json,
    short_time,
    show,
)

LIMIT = 500

groups_app = typer.Typer(no_args_is_help=True, help="Target groups.")
discovery_app = typer.Typer(no_args_is_help=True, help="Scan networks, import what was found.")
channels_app = typer.Typer(no_args_is_help=True, help="Notification channels.")
tokens_app = typer.Typer(no_args_is_help=True, help="Your API tokens.")
users_app = typer.Typer(no_args_is_help=True, help="Users (through the API).")


@users_app.callback()
def users() -> None:
    """Users (through the API). (A callback keeps `users` a group of one command.)"""


def show_list(path: str, output: OutputFormat, columns: Sequence[Column]) -> None:
    """One page of a list endpoint, as a table or the API's JSON."""
    with connect() as client:
        page = client.get(path, limit=LIMIT)
    show(page, output, page["items"], columns)


Name = Annotated[str, typer.Argument(help="The name or id.")]


@groups_app.command("list")
@reports_errors
def list_groups(output: OutputOption = OutputFormat.table) -> None:
    """Target groups with their member counts."""
    show_list(
        "/target-groups",
        output,
        [field("name"), field("member_count", "MEMBERS"), field("description")],
    )


@groups_app.command("show")
@reports_errors
def show_group(reference: Name, output: OutputOption = OutputFormat.table) -> None:
    """One group and its member targets."""
    with connect() as client:
        group = find_listed(client, "/target-groups", reference, "group")
        members = client.get("/targets", group=group["name"], limit=LIMIT)["items"]
    if output is OutputFormat.json:
        print_json({**group, "members": members})
        return
    typer.echo(f"group {group['name']}: {group['member_count']} member(s)")
    show(
        members,
        output,
        members,
        [field("name", "TARGET"), field("address"), field("protocol")],
    )


@discovery_app.command("scan")
@reports_errors
def scan(
    hosts: Annotated[list[str], typer.Argument(help="Addresses, ranges or CIDR blocks.")],
    ports: Annotated[str | None, typer.Option(help="nmap port list, e.g. 22,5985.")] = None,
    name: Annotated[str | None, typer.Option(help="The scan's name.")] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Start a network scan; `discovery show ID` follows it."""
    body: dict[str, Any] = {"hosts": hosts, "name": name}
    if ports is not None:
        body["ports"] = ports
    with connect() as client:
        answer = client.post("/discovery/scans", {k: v for k, v in body.items() if v is not None})
    if output is OutputFormat.json:
        print_json(answer)
    else:
        typer.echo(f"scan {answer['id']} started ({answer['status']})")


@discovery_app.command("show")
@reports_errors
def show_scan(
    scan_id: Annotated[str | None, typer.Argument(help="A scan's id; none lists scans.")] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """A scan's hosts, or the list of scans."""
    with connect() as client:
        if scan_id is None:
            page = client.get("/discovery/scans", limit=LIMIT)
            show(
                page,
                output,
                page["items"],
                [field("id"), field("name"), field("status"), field("hosts_found", "HOSTS")],
            )
            return
        detail = client.get(f"/discovery/scans/{scan_id}")
    show(
        detail,
        output,
        detail["hosts"],
        [
            field("address"),
            field("hostname"),
            ("OS", lambda row: row["os_family"] or row["os_guess"]),
            ("PORTS", lambda row: [port["port"] for port in row["open_ports"]]),
        ],
    )


@discovery_app.command("import")
@reports_errors
def import_scan(
    scan_id: Annotated[str, typer.Argument(help="The scan's id.")],
    address: Annotated[
        list[str] | None, typer.Option("--address", "-a", help="Only these; default all found.")
    ] = None,
    credential: Annotated[str | None, typer.Option(help="A credential's name.")] = None,
    group: Annotated[list[str] | None, typer.Option("--group", "-g", help="Add to groups.")] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Create targets from the hosts a scan found."""
    with connect() as client:
        addresses = address or [
            host["address"] for host in client.get(f"/discovery/scans/{scan_id}")["hosts"]
        ]
        body: dict[str, Any] = {"addresses": addresses, "groups": group or []}
        if credential is not None:
            body["credential_id"] = find_listed(client, "/credentials", credential, "credential")[
                "id"
            ]
        answer = client.post(f"/discovery/scans/{scan_id}/import", body)
    if output is OutputFormat.json:
        print_json(answer)
        return
    typer.echo(
        f"{len(answer['created'])} created, {len(answer['existing'])} existing, "
        f"{len(answer['skipped'])} skipped"
    )


@channels_app.command("list")
@reports_errors
def list_channels(output: OutputOption = OutputFormat.table) -> None:
    """Notification channels (URLs redacted)."""
    show_list(
        "/notification-channels",
        output,
        [field("name"), field("service"), field("url_redacted", "URL")],
    )


@channels_app.command("test")
@reports_errors
def send_test_message(reference: Name, output: OutputOption = OutputFormat.table) -> None:
    """Send a test message; exit 1 when it was not delivered."""
    with connect() as client:
        channel = find_listed(client, "/notification-channels", reference, "channel")
        answer = client.post(f"/notification-channels/{channel['id']}/test")
    if output is OutputFormat.json:
        print_json(answer)
    else:
        typer.echo(f"channel {channel['name']}: {answer['status']} {answer['detail']}".rstrip())
    if not answer["ok"]:
        raise typer.Exit(1)


@tokens_app.command("list")
@reports_errors
def list_tokens(output: OutputOption = OutputFormat.table) -> None:
    """Your API tokens that are not revoked (values are shown once, when created)."""
    show_list(
        "/tokens",
        output,
        [
            field("id"),
            field("name"),
            ("EXPIRES", lambda row: short_time(row["expires_at"])),
            ("LAST USED", lambda row: short_time(row["last_used_at"])),
        ],
    )


@tokens_app.command("revoke")
@reports_errors
def revoke_token(reference: Name) -> None:
    """Revoke one of your tokens by id or name; a name several tokens share is refused (every
    `login` from one machine names its token alike), so the wrong one is never revoked."""
    with connect() as client:
        token = find_listed(client, "/tokens", reference, "token")
        listed = client.get("/tokens", limit=LIMIT)["items"]
        twins = [str(item["id"]) for item in listed if item["name"] == reference]
        if len(twins) > 1:
            raise CliError(f"{len(twins)} tokens are named {reference!r}; revoke one by id", twins)
        client.request("DELETE", f"/tokens/{token['id']}")
    typer.echo(f"token {token['name']} revoked")


@users_app.command("list")
@reports_errors
def list_users(output: OutputOption = OutputFormat.table) -> None:
    """Users and their roles."""
    show_list(
        "/users",
        output,
        [
            field("username"),
            field("email"),
            field("role"),
            ("DISABLED", lambda row: "yes" if row["disabled"] else ""),
            ("LAST LOGIN", lambda row: short_time(row["last_login_at"])),
        ],
    )
