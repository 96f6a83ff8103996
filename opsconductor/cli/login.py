"""`opsconductor login | logout`: keep an API token for this machine's user, or drop it."""

import getpass
import os
import socket
from typing import Annotated

import typer

from opsconductor.cli.client import (
    DEFAULT_URL,
    TOKEN_VARIABLE,
    URL_VARIABLE,
    ApiClient,
    CliError,
    StoredLogin,
    forget_stored_login,
    normalized_url,
    read_stored_login,
    reports_errors,
    write_stored_login,
)

UrlOption = Annotated[
    str | None,
    typer.Option("--url", help=f"The server, e.g. {DEFAULT_URL} (default: ${URL_VARIABLE})."),
]


@reports_errors
def login(
    url: UrlOption = None,
    username: Annotated[str | None, typer.Option("--username", "-u")] = None,
    password: Annotated[
        str | None,
        typer.Option(help="Prompted for (hidden) when omitted. Visible in the process list!"),
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=3650, help="The token's lifetime in days.")] = 90,
) -> None:
    """Sign in and keep an API token in ~/.config/opsconductor/credentials.json (mode 0600)."""
    server = normalized_url(
        url or os.environ.get(URL_VARIABLE) or typer.prompt("Server URL", default=DEFAULT_URL)
    )
    name = username or typer.prompt("Username")
    # getpass rather than typer.prompt: it never echoes, even when stdin is not a terminal.
    secret = password if password is not None else getpass.getpass("Password: ")
    with ApiClient(server, None) as anonymous:
        pair = anonymous.post("/auth/login", {"username": name, "password": secret})
    with ApiClient(server, pair["access_token"]) as session:
        created = session.post(
            "/tokens",
            {"name": f"cli {name}@{socket.gethostname()}"[:100], "expires_in_days": days},
        )
        # The password session was only the way to the token: end it at once.
        session.request("POST", "/auth/logout")
    path = write_stored_login(
        StoredLogin(url=server, token=created["token"], token_id=created["id"], username=name)
    )
    typer.echo(f"signed in to {server} as {name}; token kept in {path} ({days} days)")


@reports_errors
def logout() -> None:
    """Revoke the stored API token on the server and forget it here."""
    stored = read_stored_login()
    if stored is None:
        if os.environ.get(TOKEN_VARIABLE):
            raise CliError(
                f"no stored login; the token in {TOKEN_VARIABLE} is not managed by the CLI "
                "(revoke it with DELETE /api/v1/tokens/{id})"
            )
        typer.echo("not signed in")
        return
    if stored.token_id:
        with ApiClient(stored.url, stored.token) as client:
            try:
                client.request("DELETE", f"/tokens/{stored.token_id}")
            except CliError as error:
                # An expired or already revoked token must not keep the user signed in here.
                typer.echo(f"warning: the token was not revoked: {error.message}", err=True)
    forget_stored_login()
    typer.echo(f"signed out of {stored.url}")


app = typer.Typer()
app.command()(login)
app.command()(logout)
