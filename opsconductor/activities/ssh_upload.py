"""`ssh.upload`: write one file on the target over SFTP, atomically.

The bytes go to a fresh temporary name in the destination's directory (created 0600, so a
secret in the content is never readable by others), get their mode, are checked by size, and
are renamed over the destination with the OpenSSH `posix-rename` extension: a reader sees the
old file or the new one, never half of it. A failed or cancelled upload removes its temporary
file.
"""

import hashlib
import posixpath
import re
import secrets
from collections.abc import Awaitable, Callable
from contextlib import suppress

import asyncssh
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.activities.steps import SecretMask, attempt, failed, rejected
from opsconductor.contracts.steps import StepRequest, StepResult
from opsconductor.errors import NotFound
from opsconductor.jobspec.actions import SshUpload, dest_problem
from opsconductor.services.libraries import read_library_file

# A resolver for `with.file`: the bytes of a file of the step's library. Step libraries bring
# one; without it `file` cannot be answered.
LibraryFiles = Callable[[StepRequest, str], Awaitable[bytes]]

MODE = re.compile(r"0?[0-7]{3,4}")
CHUNK_BYTES = 64 * 1024
TEMPORARY_MODE = 0o600


def checked_mode(inputs: SshUpload, mask: SecretMask) -> int:
    if not MODE.fullmatch(inputs.mode):
        raise rejected(
            mask.apply(f"with.mode: must be an octal mode such as 0644, got {inputs.mode!r}")
        )
    return int(inputs.mode, 8)


def checked_dest(inputs: SshUpload, mask: SecretMask) -> str:
    # The rendered path, whatever the template made of it.
    if problem := dest_problem(inputs.dest):
        raise rejected(mask.apply(f"with.dest: {problem}"))
    return inputs.dest


def library_files_from(sessionmaker: async_sessionmaker[AsyncSession]) -> LibraryFiles:
    """Reads `file` references (library@version/name, as expansion writes them) from the
    installed library versions: immutable, so a run always uploads what its job pinned."""

    async def read(request: StepRequest, reference: str) -> bytes:
        async with sessionmaker() as session:
            try:
                return (await read_library_file(session, reference)).encode()
            except NotFound as error:
                raise rejected(f"with.file: {error.detail}") from None

    return read


async def upload_bytes(
    request: StepRequest,
    inputs: SshUpload,
    library_files: LibraryFiles,
) -> bytes:
    if inputs.content is not None:
        return inputs.content.encode()
    assert inputs.file is not None
    return await library_files(request, inputs.file)


async def write_file(
    connection: asyncssh.SSHClientConnection,
    dest: str,
    data: bytes,
    mode: int,
    mask: SecretMask,
) -> StepResult:
    directory, name = posixpath.split(dest)
    temporary = posixpath.join(directory, f".{name}.opsconductor-{secrets.token_hex(6)}")
    try:
        async with connection.start_sftp_client() as sftp:
            try:
                await _write_temporary(sftp, temporary, data, mode)
                await sftp.posix_rename(temporary, dest)
            except BaseException:
                # Cancelled or failed: leave nothing behind (best effort).
                with suppress(asyncssh.Error, OSError):
                    await sftp.remove(temporary)
                raise
    except asyncssh.SFTPError as error:
        message = mask.apply(f"cannot write {dest}: {error.reason}")
        raise failed(message, StepResult(attempt=attempt(), error=message)) from None
    except asyncssh.Error as error:
        message = mask.apply(f"SFTP is not available: {error.reason}")
        raise failed(message, StepResult(attempt=attempt(), error=message)) from None
    digest = hashlib.sha256(data).hexdigest()
    summary = mask.apply(f"wrote {len(data)} bytes to {dest} (mode {mode:04o}, sha256 {digest})")
    return StepResult(
        attempt=attempt(), stdout=summary, outputs={"bytes": len(data), "sha256": digest}
    )


async def _write_temporary(
    sftp: asyncssh.SFTPClient, temporary: str, data: bytes, mode: int
) -> None:
    attrs = asyncssh.SFTPAttrs(permissions=TEMPORARY_MODE)
    # "x": the name must be new, so nothing that already sits there is written through.
    async with sftp.open(temporary, "xb", attrs) as handle:
        for offset in range(0, len(data), CHUNK_BYTES):
            await handle.write(data[offset : offset + CHUNK_BYTES], offset)
    # Set explicitly: the server's umask applies to the mode given at creation.
    await sftp.chmod(temporary, mode)
    written = (await sftp.stat(temporary)).size
    if written != len(data):
        raise asyncssh.SFTPFailure(f"wrote {written} of {len(data)} bytes")
