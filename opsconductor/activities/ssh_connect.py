"""Opening SSH connections for the worker: the credential from the vault, the host key pinned.

The host key is checked inside the handshake (`validate_host_public_key`), against the
fingerprint pinned on the target row, read at connection time so an operator's acceptance
applies at once. With nothing pinned yet the key is trusted on first use and pinned after the
login succeeds; a different key later is refused until an operator accepts it. Nothing else is
trusted: no known_hosts file, no ssh-agent, no ~/.ssh keys or config of the worker's user, no
X.509 CA bundle, no Kerberos (GSS) ticket, no PKCS#11 token.

What a connection logs in with is built once per credential (`login_options`: a chunk builds it
once for all its targets, docs/engine.md "The worker's per-target cost") and handed to every
connection it serves; only the address, the pinned key and the timeout are per connection.
"""

import hmac
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncssh
from asyncssh.logging import SSHLogger
from asyncssh.public_key import get_default_public_key_algs
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.db import unit_of_work
from opsconductor.errors import NotFound
from opsconductor.models.credential import CredentialKind
from opsconductor.services.targets import host_keys
from opsconductor.services.vault import CredentialUnavailable, Revealed

# asyncssh logs every command it sends at INFO, and a rendered command may hold a secret
# (`{{ secret('db') }}`): its records below WARNING never reach our log pipeline.
logging.getLogger("asyncssh").setLevel(logging.WARNING)
_format_and_log = SSHLogger.log


def _log_if_enabled(
    self: SSHLogger, level: int, msg: object, *args: object, **kwargs: object
) -> None:
    """asyncssh turns every argument of every record into text before the logger's level is
    checked: ~20 debug and info records per connection, 3 % of the worker's CPU per target
    (benchmarks/README.md, "Issue #19: fix 17"). The level is checked first."""
    if self.isEnabledFor(level):
        _format_and_log(self, level, msg, *args, **kwargs)


SSHLogger.log = _log_if_enabled  # type: ignore[method-assign]

CONNECT_TIMEOUT_SECONDS = 20
KEEPALIVE_SECONDS = 15


class SshProblem(Exception):
    """Why a connection could not be made; `retryable` says whether trying again may help."""

    retryable = False

    def __init__(self, message: str, presented_fingerprint: str | None = None):
        super().__init__(message)
        self.presented_fingerprint = presented_fingerprint


class HostKeyChanged(SshProblem):
    pass


class AuthenticationFailed(SshProblem):
    pass


class Unreachable(SshProblem):
    retryable = True


@dataclass(frozen=True, slots=True)
class Endpoint:
    target_id: uuid.UUID
    name: str
    address: str
    port: int
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS


# A host with an SSH CA presents a certificate when the client offers certificate algorithms
# (asyncssh's default lists them first), and we trust no CA: the pin is of the plain key, so
# only plain-key algorithms are offered, in asyncssh's default order (the key chosen on a host
# without a certificate, and so every pin made before this, stays the same).
PLAIN_HOST_KEY_ALGORITHMS = [algorithm.decode() for algorithm in get_default_public_key_algs()]


class _PinnedHostKey(asyncssh.SSHClient):
    def __init__(self, pinned: str | None):
        self.pinned = pinned
        self.presented: str | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.presented = key.get_fingerprint("sha256")
        if self.pinned is None:
            return True  # trust on first use; pinned by the caller once the login succeeds
        return hmac.compare_digest(self.presented, self.pinned)


def login_options(credential: Revealed) -> asyncssh.SSHClientConnectionOptions:
    """How to log in with the credential, and nothing else the worker's user has: built (its
    key parsed) once per credential in a chunk, shared by all its connections."""
    if credential.kind is CredentialKind.ssh_key:
        try:
            key = asyncssh.import_private_key(
                credential.secret["private_key"], credential.secret.get("passphrase")
            )
        except asyncssh.KeyImportError:
            # Checked when stored, so only a tampered or mis-restored row gets here.
            raise CredentialUnavailable(
                f"the private key of credential {credential.name!r} does not load"
            ) from None
        login: dict[str, object] = {
            "client_keys": asyncssh.load_keypairs([key]),
            "password": None,
            "preferred_auth": ("publickey",),
        }
    elif credential.kind is CredentialKind.ssh_password:
        login = {
            "client_keys": None,
            "password": credential.secret["password"],
            "preferred_auth": ("password", "keyboard-interactive"),
        }
    else:
        raise CredentialUnavailable(
            f"credential {credential.name!r} is a {credential.kind} credential; "
            "SSH needs ssh_key or ssh_password"
        )
    return asyncssh.SSHClientConnectionOptions(
        username=credential.username,
        known_hosts=([], [], []),  # the pinned key is checked by _PinnedHostKey
        server_host_key_algs=PLAIN_HOST_KEY_ALGORITHMS,
        x509_trusted_certs=None,
        agent_path=None,
        config=None,
        gss_host=None,  # never the worker's Kerberos ticket (GSS key exchange or login)
        pkcs11_provider=None,
        ignore_encrypted=True,
        keepalive_interval=KEEPALIVE_SECONDS,
        **login,
    )


def gone_from_inventory(endpoint: Endpoint) -> AuthenticationFailed:
    return AuthenticationFailed(
        f"target {endpoint.name!r} is no longer in the inventory, so its host key cannot be checked"
    )


@dataclass(frozen=True, slots=True)
class Prefetched:
    """What a chunk read once for all its targets: the target's pinned host key, and the
    login options of its credential."""

    pinned: str | None
    options: asyncssh.SSHClientConnectionOptions


@asynccontextmanager
async def ssh_connection(
    sessionmaker: async_sessionmaker[AsyncSession],
    endpoint: Endpoint,
    credential: Revealed,
    prefetched: Prefetched | None = None,
) -> AsyncIterator[tuple[asyncssh.SSHClientConnection, str]]:
    """A logged-in connection and the host key fingerprint it verified."""
    if prefetched is None:
        async with unit_of_work(sessionmaker) as session:
            try:
                pinned = await host_keys.pinned_host_key(session, endpoint.target_id)
            except NotFound as error:
                raise gone_from_inventory(endpoint) from error
        options = login_options(credential)
    else:
        pinned, options = prefetched.pinned, prefetched.options
    checker = _PinnedHostKey(pinned)
    try:
        connection = await asyncssh.connect(
            endpoint.address,
            endpoint.port,
            options=options,
            client_factory=lambda: checker,
            connect_timeout=endpoint.connect_timeout,
        )
    except asyncssh.HostKeyNotVerifiable:
        presented = checker.presented or "an unreadable key"
        if checker.presented is not None:
            async with unit_of_work(sessionmaker) as session:
                await host_keys.record_refused_host_key(session, endpoint.target_id, presented)
        raise HostKeyChanged(
            f"host key for {endpoint.name} changed: expected {pinned}, got {presented}; "
            "an operator must accept the new key",
            checker.presented,
        ) from None
    except asyncssh.PermissionDenied:
        raise AuthenticationFailed(
            f"authentication as {credential.username!r} on {endpoint.name} failed "
            f"(credential {credential.name!r})",
            checker.presented,
        ) from None
    except (OSError, TimeoutError, asyncssh.Error) as error:
        # The reason asyncssh or the OS gives never holds the credential's secret.
        reason = str(error) or f"no SSH handshake within {endpoint.connect_timeout:g} s"
        raise Unreachable(
            f"cannot connect to {endpoint.name} ({endpoint.address}:{endpoint.port}): "
            f"{type(error).__name__}: {reason}",
            checker.presented,
        ) from None
    assert checker.presented is not None
    try:
        if pinned is None:
            async with unit_of_work(sessionmaker) as session:
                await host_keys.record_host_key(session, endpoint.target_id, checker.presented)
        yield connection, checker.presented
    finally:
        connection.close()
        await connection.wait_closed()
