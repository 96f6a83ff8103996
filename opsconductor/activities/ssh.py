"""`ssh.command`, `ssh.script` and `ssh.upload`, on the `ssh` queue (activity `ssh-step`).

The step's `with` block is rendered here, on the worker: `secret('name')` reads a credential of
kind `secret` through the vault (every read logged) and its value is masked in everything the
step streams or returns. Output streams to the run log line by line while the command runs;
the activity heartbeats.

Every command runs in a session of its own on the target (`setsid`), and announces that session's
id on its first stdout line, which the activity strips. A cancelled run or a step timeout ends
the whole session (the command, its children, its background jobs): TERM, then KILL after a
short grace, sent over a second channel of the same connection (through `sudo -n` when
the step ran with `sudo`) before the step's channel closes.
"""

import asyncio
import codecs
import re
import shlex
from collections.abc import Awaitable, Callable
from contextlib import suppress

import asyncssh
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from opsconductor.activities.run_log import RunLogStream, RunLogWriter
from opsconductor.activities.ssh_connect import (
    CONNECT_TIMEOUT_SECONDS,
    Endpoint,
    Prefetched,
    SshProblem,
    ssh_connection,
)
from opsconductor.activities.ssh_upload import (
    checked_dest,
    checked_mode,
    library_files_from,
    upload_bytes,
    write_file,
)
from opsconductor.activities.step_credentials import StepCredentials
from opsconductor.activities.steps import (
    OutputTail,
    SecretMask,
    attempt,
    check_exit,
    exit_result,
    failed,
    heartbeating,
    rejected,
    render_inputs,
)
from opsconductor.contracts.steps import StepRequest, StepResult
from opsconductor.jobspec.actions import SshCommand, SshScript, SshUpload
from opsconductor.jobspec.templates import SecretResolver
from opsconductor.security.envelope import KeyRing
from opsconductor.services.vault import Revealed
from opsconductor.text import OUTPUT_ERRORS

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Shells take a script on stdin with `-s -- args`; other interpreters (python, perl, ruby)
# read it from `-`.
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh"})

# The first stdout line of every command: `<marker><session id>` (also its process group id).
SESSION_MARKER = "opsconductor-session:"
SESSION_MARKER_BYTES = SESSION_MARKER.encode()
# Longer without a newline, the first stdout line is not the announcement but output.
MAX_ANNOUNCEMENT_BYTES = len(SESSION_MARKER_BYTES) + 32
# Runs in the new session: announce its id, then become the shell (`$0`) that runs
# the step's command (`$1`); both arrive as arguments, so the command is never re-quoted.
_ANNOUNCE_THEN_RUN = f'printf "{SESSION_MARKER}%s\\n" "$$"; exec "$0" -c "$1"'
# The shell a step's command runs in: the login shell, as sshd would run it, or `sh` under sudo
# (sudo resets the environment). Expanded by the remote shell, hence unquoted.
LOGIN_SHELL = '"${SHELL:-/bin/sh}"'
# How long the session has to exit after TERM before it gets KILL.
STOP_GRACE_SECONDS = 3
# Bounds the stop itself, so a target that stops answering cannot hold a cancelled step.
STOP_TIMEOUT_SECONDS = STOP_GRACE_SECONDS + 7

# What a step does once logged in.
Operation = Callable[[asyncssh.SSHClientConnection], Awaitable[StepResult]]


def connect_timeout(step_timeout: float | None) -> float:
    """Connecting may take a share of the step's timeout, so a target that never answers
    fails the step by name ("cannot connect ...") rather than as a bare step timeout."""
    if step_timeout is None:
        return CONNECT_TIMEOUT_SECONDS
    return max(1.0, min(CONNECT_TIMEOUT_SECONDS, step_timeout * 0.75))


def _in_own_session(command: str, shell: str) -> str:
    """A POSIX sh snippet that runs `command` with `shell` as the leader of a new session and
    process group.

    `setsid -w` forks when its caller already leads a group (as sshd's session child does) and
    passes the exit status back. Without `setsid` (not Linux), the shell sshd started already
    leads its session, so `exec` keeps that group.
    """
    return (
        "set --; command -v setsid >/dev/null 2>&1 && set -- setsid -w; "
        f'exec "$@" sh -c {shlex.quote(_ANNOUNCE_THEN_RUN)} {shell} {shlex.quote(command)}'
    )


def _wrapped(command: str, env: dict[str, str], workdir: str | None, sudo: bool) -> str:
    for name in env:
        if not ENV_NAME.match(name):
            raise rejected(f"with.env: {name!r} is not a valid environment variable name")
    if workdir:
        command = f"cd {shlex.quote(workdir)} && {command}"
    assignments = " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items())
    if sudo:
        # -n: never prompt; a missing sudo rule fails at once instead of hanging the step.
        prefix = f"env {assignments} " if assignments else ""
        return f"sudo -n -- {prefix}sh -c {shlex.quote(_in_own_session(command, 'sh'))}"
    if assignments:
        command = f"export {assignments}; {command}"
    return _in_own_session(command, LOGIN_SHELL)


def _stop_session_command(session: int, sudo: bool) -> str:
    """TERM to the whole session, KILL to what is left after the grace; always exits 0.

    `pkill -s` reaches every process of the session, also the background jobs a shell with job
    control (`set -m`) moved into process groups of their own; without procps, the session
    leader's process group is what can be reached.
    """
    polls = STOP_GRACE_SECONDS * 5
    script = (
        "if command -v pkill >/dev/null 2>&1; then "
        f'stop() {{ pkill -"$1" -s {session}; }}; alive() {{ pgrep -s {session} >/dev/null; }}; '
        f'else stop() {{ kill -s "$1" -- -{session}; }}; '
        f"alive() {{ kill -s 0 -- -{session}; }}; fi; "
        "stop TERM 2>/dev/null || exit 0; i=0; "
        f'while [ "$i" -lt {polls} ] && alive 2>/dev/null; do sleep 0.2; i=$((i + 1)); done; '
        "stop KILL 2>/dev/null; exit 0"
    )
    command = f"sh -c {shlex.quote(script)}"
    # A session started through sudo belongs to root: only root may signal it.
    return f"sudo -n -- {command}" if sudo else command


async def _stop_session(
    connection: asyncssh.SSHClientConnection, session: int | None, sudo: bool
) -> None:
    if session is None:
        return
    with suppress(OSError, asyncssh.Error, TimeoutError):
        await asyncio.wait_for(
            connection.run(_stop_session_command(session, sudo), check=False),
            STOP_TIMEOUT_SECONDS,
        )


_UTF8_DECODER = codecs.getincrementaldecoder("utf-8")


class _StreamText:
    """One stream's bytes as text, by opsconductor.text's rule (bytes that are not UTF-8 arrive
    as `\\xNN`). Each stream has a decoder of its own: asyncssh's `encoding=` shares one per
    channel, so half a character at the end of a stdout packet was finished, or spoiled, by
    the next stderr packet."""

    def __init__(self, tail: OutputTail) -> None:
        self._tail = tail
        self._decoder = _UTF8_DECODER(errors=OUTPUT_ERRORS)

    def add(self, data: bytes, final: bool = False) -> None:
        if text := self._decoder.decode(data, final):
            self._tail.add(text)


def _announced_session(line: bytes, stdout: _StreamText) -> int | None:
    """The wrapper's first line; anything else (a shell that failed before it) is output."""
    if line.startswith(SESSION_MARKER_BYTES):
        with suppress(ValueError):
            return int(line.removeprefix(SESSION_MARKER_BYTES).strip())
        return None
    stdout.add(line)
    return None


class _CommandSession(asyncssh.SSHClientSession[bytes]):
    """A command's channel, its output handled as asyncssh delivers it: no reader tasks or
    waits per packet (benchmarks/README.md, fix 17). The first stdout line is the wrapper's
    session id; the rest of stdout, and stderr, go to their tails. `closed` ends with the
    channel, or with the error that lost it."""

    def __init__(self, stdout: OutputTail, stderr: OutputTail) -> None:
        self._stdout = _StreamText(stdout)
        self._stderr = _StreamText(stderr)
        self._first_line: bytes | None = b""  # until its newline
        self._reading = True
        self.session: int | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def stop_reading(self) -> None:
        """What the command writes from now on (a cancelled step's last words while its
        session is stopped) is not its output."""
        self._first_line = None
        self._reading = False

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if not self._reading:
            return
        if datatype == asyncssh.EXTENDED_DATA_STDERR:
            self._stderr.add(data)
            return
        if self._first_line is not None:
            head, newline, data = data.partition(b"\n")
            self._first_line += head + newline
            if not newline and len(self._first_line) <= MAX_ANNOUNCEMENT_BYTES:
                return
            line, self._first_line = self._first_line, None
            self.session = _announced_session(line, self._stdout)
        if data:
            self._stdout.add(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._first_line:  # stdout ended without a newline
            _announced_session(self._first_line, self._stdout)
        if self._reading:
            self._stdout.add(b"", final=True)
            self._stderr.add(b"", final=True)
            self.stop_reading()
        if self.closed.done():  # cancelled: nobody waits
            return
        if exc is None:
            self.closed.set_result(None)
        else:
            self.closed.set_exception(exc)


def _script_command(inputs: SshScript) -> str:
    interpreter = shlex.split(inputs.interpreter)
    if not interpreter:
        raise rejected("with.interpreter: is empty")
    stdin_args = ["-s", "--"] if interpreter[-1].rsplit("/", 1)[-1] in SHELLS else ["-"]
    words = [*interpreter, *stdin_args, *inputs.args]
    return " ".join(shlex.quote(word) for word in words)


class SshActions:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        keyring: KeyRing,
    ):
        self._sessionmaker = sessionmaker
        self._credentials = StepCredentials(sessionmaker, keyring)
        self._library_files = library_files_from(sessionmaker)

    @activity.defn(name="ssh-step")
    async def run_step(self, request: StepRequest) -> StepResult:
        target = request.target
        if target is None:
            raise rejected(f"{request.action} needs a target")
        mask = SecretMask()
        secrets, credential = await self._credentials.reveal(request, target, mask)
        if request.action == "ssh.upload":
            operation = await self._upload(request, mask, secrets)
        else:
            operation = self.command(request, mask, secrets)
        timeout = activity.info().start_to_close_timeout
        endpoint = Endpoint(
            target.id,
            target.name,
            target.address,
            target.port,
            connect_timeout(timeout.total_seconds() if timeout else None),
        )
        return await self.logged_in(endpoint, credential, operation, mask)

    async def logged_in(
        self,
        endpoint: Endpoint,
        credential: Revealed,
        operation: Operation,
        mask: SecretMask,
        prefetched: Prefetched | None = None,
    ) -> StepResult:
        """The operation's result on a connection to the endpoint; a connection that fails
        fails the attempt (retryable when trying again may help)."""
        try:
            async with ssh_connection(self._sessionmaker, endpoint, credential, prefetched) as (
                connection,
                _,
            ):
                return await operation(connection)
        except SshProblem as problem:
            message = mask.apply(str(problem))
            if problem.retryable:
                raise failed(message, StepResult(attempt=attempt(), error=message)) from None
            raise rejected(message) from None

    def command(
        self,
        request: StepRequest,
        mask: SecretMask,
        secrets: SecretResolver,
        writer: RunLogWriter | None = None,
    ) -> Operation:
        """`ssh.command` or `ssh.script` on a connection; its output lines go to `writer` (a
        chunk's) or to a run log stream of its own."""
        if request.action == "ssh.script":
            script = render_inputs(request, SshScript, mask, secrets=secrets)
            command, stdin = _script_command(script), script.script
            env, workdir, sudo, expect = script.env, None, script.sudo, script.expect_exit
        else:
            inputs = render_inputs(request, SshCommand, mask, secrets=secrets)
            command, stdin = inputs.command, None
            env, workdir, sudo, expect = inputs.env, inputs.workdir, inputs.sudo, inputs.expect_exit
        assert isinstance(sudo, bool)
        full_command = _wrapped(command, env, workdir, sudo)

        async def run(connection: asyncssh.SSHClientConnection) -> StepResult:
            result = await self._execute(
                request, connection, full_command, stdin, mask, sudo, writer
            )
            return check_exit(result, expect)

        return run

    async def _upload(
        self, request: StepRequest, mask: SecretMask, secrets: SecretResolver
    ) -> Operation:
        inputs = render_inputs(request, SshUpload, mask, secrets=secrets)
        dest, mode = checked_dest(inputs, mask), checked_mode(inputs, mask)
        data = await upload_bytes(request, inputs, self._library_files)

        async def run(connection: asyncssh.SSHClientConnection) -> StepResult:
            async with self._log(request, mask) as log, heartbeating():
                result = await write_file(connection, dest, data, mode, mask)
                log.write("stdout", result.stdout + "\n")
            return result

        return run

    def _log(
        self, request: StepRequest, mask: SecretMask, writer: RunLogWriter | None = None
    ) -> RunLogStream:
        target = request.target.name if request.target else None
        return RunLogStream(
            self._sessionmaker,
            request.run_id,
            request.step_id,
            target,
            request.attempt(attempt()),
            mask,
            writer,
        )

    async def _execute(
        self,
        request: StepRequest,
        connection: asyncssh.SSHClientConnection,
        command: str,
        stdin: str | None,
        mask: SecretMask,
        sudo: bool,
        writer: RunLogWriter | None,
    ) -> StepResult:
        async with self._log(request, mask, writer) as log:
            stdout, stderr = OutputTail("stdout", log), OutputTail("stderr", log)
            # Bytes, decoded per stream (_StreamText).
            output = _CommandSession(stdout, stderr)
            channel, _ = await connection.create_session(lambda: output, command, encoding=None)
            try:
                async with heartbeating():
                    if stdin is not None:
                        channel.write(stdin.encode())
                    channel.write_eof()
                    await output.closed
            except asyncio.CancelledError:
                # The run was cancelled (or the step timed out): stop the remote command and
                # everything it started rather than leave them running unattended.
                output.stop_reading()
                await _stop_session(connection, output.session, sudo)
                with suppress(OSError, asyncssh.Error):
                    channel.kill()
                channel.close()
                raise
        exit_code = channel.get_exit_status()
        if exit_code is not None and exit_code < 0:
            exit_code = None  # asyncssh says -1 for "killed by a signal"
        return exit_result(exit_code, stdout.result(mask), stderr.result(mask))
