"""The API client behind `opsconductor login | apply | run | runs | targets | schedules`:
where the API is, the token kept for it, and errors shown as a person can read them.

The token: `login` signs in with a password once, creates a named API token
(`POST /tokens`) and ends the password session again. API tokens need no refresh, so several
commands running at once never race on a rotating refresh token (a reused refresh token
revokes its whole session), and `logout` revokes exactly the token this machine holds.
"""

import functools
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import typer

if TYPE_CHECKING:
    # httpx is imported when a command first talks to the API, not at start-up: with its
    # command-line module it costs a third of `opsconductor --help`'s time
    # (tests/unit/test_cli_imports.py).
    import httpx

# The API's path prefix (api/deps.API_PREFIX), not imported: that would load the server.
API_PREFIX = "/api/v1"

URL_VARIABLE = "OPSCONDUCTOR_URL"
TOKEN_VARIABLE = "OPSCONDUCTOR_TOKEN"  # noqa: S105 - the variable's name, not a token
DEFAULT_URL = "http://127.0.0.1:8000"
CREDENTIALS_FILE = "credentials.json"
# Seconds: for any request, and to connect.
REQUEST_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0

EXIT_ERROR = 1

P = ParamSpec("P")
R = TypeVar("R")


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "opsconductor"


def credentials_path() -> Path:
    return config_dir() / CREDENTIALS_FILE


@dataclass(frozen=True, slots=True)
class StoredLogin:
    url: str
    token: str
    token_id: str | None
    username: str


def read_stored_login() -> StoredLogin | None:
    path = credentials_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise CliError(f"cannot read {path}: {error}; run `opsconductor login` again") from None
    return StoredLogin(
        url=str(data["url"]),
        token=str(data["token"]),
        token_id=data.get("token_id"),
        username=str(data.get("username", "")),
    )


def write_stored_login(login: StoredLogin) -> Path:
    """Written 0600 inside a 0700 directory, created that way (never readable, not even
    for a moment, by anyone else)."""
    directory = config_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    path = directory / CREDENTIALS_FILE
    temporary = directory / f".{CREDENTIALS_FILE}.{os.getpid()}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(
            {
                "url": login.url,
                "token": login.token,
                "token_id": login.token_id,
                "username": login.username,
            },
            file,
            indent=2,
        )
    os.replace(temporary, path)
    return path


def forget_stored_login() -> bool:
    try:
        credentials_path().unlink()
    except FileNotFoundError:
        return False
    return True


def normalized_url(url: str) -> str:
    """The server's base URL; `…/api/v1` as printed by `up` is accepted too."""
    url = url.strip().rstrip("/")
    if url.endswith(API_PREFIX):
        url = url[: -len(API_PREFIX)]
    if not url.startswith(("http://", "https://")):
        raise CliError(f"{url!r} is not an http:// or https:// URL")
    return url


class CliError(Exception):
    """Something the user must read: printed as `error: …`, exit code 1."""

    def __init__(self, message: str, details: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []


class StreamBroken(CliError):
    """The connection dropped in the middle of a stream; following may resume."""


def problem_error(response: "httpx.Response") -> CliError:
    """An API error answer (RFC 9457 problem+json) as a message naming each field."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = response.text.strip()[:500] or response.reason_phrase
        return CliError(f"the API answered {response.status_code}: {text}")
    title = body.get("title") or response.reason_phrase
    detail = body.get("detail")
    message = f"{title} ({response.status_code})" + (f": {detail}" if detail else "")
    details = [
        f"{item.get('path', '')}: {item.get('message', '')}"
        for item in body.get("errors") or []
        if isinstance(item, dict)
    ]
    request_id = body.get("request_id") or response.headers.get("X-Request-ID")
    if request_id:
        details.append(f"request id: {request_id}")
    if response.status_code == HTTPStatus.UNAUTHORIZED:
        details.append("sign in with `opsconductor login` (or set OPSCONDUCTOR_TOKEN)")
    return CliError(message, details)


def fail_with(error: CliError) -> NoReturn:
    typer.secho(f"error: {error.message}", fg=typer.colors.RED, err=True)
    for line in error.details:
        typer.echo(f"  {line}", err=True)
    raise typer.Exit(EXIT_ERROR)


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """API problems and unreachable servers end the command with a message and exit code 1."""

    @functools.wraps(command)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except CliError as error:
            fail_with(error)

    return guarded


class ApiClient:
    """A synchronous client of /api/v1 for one command."""

    def __init__(self, url: str, token: str | None):
        import httpx

        self.url = url
        self._http = httpx.Client(
            base_url=url + API_PREFIX,
            timeout=httpx.Timeout(REQUEST_TIMEOUT, connect=CONNECT_TIMEOUT),
            headers={"Authorization": f"Bearer {token}"} if token else {},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> "httpx.Response":
        import httpx

        try:
            response = self._http.request(
                method,
                path,
                json=json_body,
                params={key: value for key, value in (params or {}).items() if value is not None},
                content=content,
                headers=headers,
            )
        except httpx.TransportError as error:
            raise unreachable(self.url, error) from None
        if response.is_error:
            raise problem_error(response)
        return response

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params).json()

    def post(self, path: str, body: Any = None) -> Any:
        response = self.request("POST", path, json_body=body)
        return response.json() if response.content else None

    def stream_events(
        self, path: str, params: Mapping[str, Any], last_event_id: int | None
    ) -> Iterator[tuple[str, str, int | None]]:
        """Server-sent events as (event, data, id), until the server ends the stream."""
        import httpx

        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        # No read timeout: a step may print nothing for a long time.
        timeout = httpx.Timeout(REQUEST_TIMEOUT, connect=CONNECT_TIMEOUT, read=None)
        try:
            with self._http.stream(
                "GET", path, params=params, headers=headers, timeout=timeout
            ) as response:
                if response.is_error:
                    response.read()
                    raise problem_error(response)
                yield from _parse_events(response.iter_lines())
        except httpx.ConnectError as error:
            raise unreachable(self.url, error) from None
        except httpx.TransportError as error:
            raise StreamBroken(f"the stream from {self.url} broke: {error}") from None


def _parse_events(lines: Iterator[str]) -> Iterator[tuple[str, str, int | None]]:
    event, identifier = "message", None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data), identifier
            event, data, identifier = "message", [], None
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
        elif field == "id" and value.isdigit():
            identifier = int(value)


def unreachable(url: str, error: "httpx.TransportError") -> CliError:
    import httpx

    if isinstance(error, httpx.ConnectError):
        return CliError(
            f"cannot connect to the OpsConductor API at {url}: {error}",
            [f"is it running? Set the address with --url or {URL_VARIABLE}"],
        )
    return CliError(f"the connection to {url} failed: {type(error).__name__}: {error}")


def connect(url: str | None = None) -> ApiClient:
    """A client for the configured server: --url, then OPSCONDUCTOR_URL, then the stored login;
    the token from OPSCONDUCTOR_TOKEN, else the stored login."""
    stored = read_stored_login()
    chosen = url or os.environ.get(URL_VARIABLE) or (stored.url if stored else DEFAULT_URL)
    token = os.environ.get(TOKEN_VARIABLE) or (stored.token if stored else None)
    if not token:
        raise CliError("not signed in: run `opsconductor login` or set OPSCONDUCTOR_TOKEN")
    return ApiClient(normalized_url(chosen), token)


FIND_PAGE = 500


def listed(client: ApiClient, path: str, page_size: int, **params: Any) -> Iterator[Any]:
    """Every item of a list endpoint, a page at a time, each page continuing from the last by
    its `next` cursor (docs/api.md "Lists": `total` stops counting at 10,000)."""
    cursor = None
    while True:
        page = client.get(path, **params, limit=page_size, cursor=cursor)
        yield from page["items"]
        cursor = page["next"]
        if cursor is None:
            return


def counted(page: dict[str, Any]) -> str:
    """A list's total as people read it: `1,234`, or `10,000+` past the count's cap."""
    return f"{page['total']:,}{'+' if page['total_capped'] else ''}"


def find_listed(
    client: ApiClient, path: str, reference: str, noun: str, key: str = "name"
) -> dict[str, Any]:
    """The item of a list endpoint whose id or `key` is `reference`, paging through the list."""
    for item in listed(client, path, FIND_PAGE):
        if reference in (str(item["id"]), item[key]):
            found: dict[str, Any] = item
            return found
    raise CliError(f"no {noun} named {reference!r}")
