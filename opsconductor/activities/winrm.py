"""`winrm.cmd` and `winrm.powershell`, on the `winrm` queue (activity `winrm-step`).

Both run one process in a fresh WinRS shell through pypsrp (WS-Management over HTTP(S)), with
the credential's transport (ntlm, kerberos, credssp or basic) and, over HTTPS, the server's
certificate checked unless the credential turns that off. PowerShell goes through WinRS too,
as `powershell.exe -NoProfile -NonInteractive -EncodedCommand <base64 UTF-16LE>`: that keeps
real process exit codes (which PSRP pipelines do not have) and the same output handling as
`winrm.cmd`. See docs/actions.md.

pypsrp is synchronous, so the WinRS conversation runs in a worker thread while the activity
heartbeats. Output is polled with short Receive calls; a cancelled run sets a flag the thread
sees at its next poll, and it then terminates the process and deletes the shell.
"""

import asyncio
import base64
import codecs
import logging
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import requests
from pypsrp.exceptions import (
    AuthenticationError,
    WinRMError,
    WinRMTransportError,
    WSManFaultError,
)
from pypsrp.shell import CommandState, SignalCode, WinRS
from pypsrp.wsman import NAMESPACES, WSMan
from spnego.exceptions import SpnegoError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from opsconductor.activities.run_log import RunLogStream
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
from opsconductor.contracts.steps import StepRequest, StepResult, TargetSnapshot
from opsconductor.jobspec.actions import WinrmCmd, WinrmPowershell
from opsconductor.models.credential import CredentialKind, WinrmTransport
from opsconductor.security.envelope import KeyRing
from opsconductor.services.vault import Revealed
from opsconductor.text import OUTPUT_ERRORS

# pypsrp logs every message it sends at DEBUG, and a command line may hold a secret.
for _name in ("pypsrp", "spnego", "requests_credssp"):
    logging.getLogger(_name).setLevel(logging.WARNING)

HTTPS_PORT = 5986
# Commands one worker process runs at once (Temporal's default activity slots); threads are
# started only as needed.
MAX_PARALLEL_COMMANDS = 100
# Each Receive waits this long for output at most: how soon the thread notices a cancel.
RECEIVE_SECONDS = 5
OPERATION_SECONDS = 20
CONNECT_SECONDS = 20
READ_SECONDS = 30
# After a cancel, how long the activity waits for the thread to stop the process and delete
# the shell before it gives up on them.
CLEANUP_SECONDS = 15
# "The WS-Management service cannot complete the operation within the time specified in
# OperationTimeout": a Receive that saw no output, not an error.
OPERATION_TIMED_OUT = 2150858793
UTF8_CODEPAGE = 65001
# cmd.exe's longest command line; WinRS runs every command through it.
MAX_COMMAND_LINE = 8191
POWERSHELL = ["powershell.exe", "-NoProfile", "-NonInteractive", "-EncodedCommand"]
CLIXML_MARK = "#< CLIXML"
CLIXML_STRING = "{http://schemas.microsoft.com/powershell/2004/04}S"
# A long CLIXML error stream is kept whole up to here (its text is far shorter).
MAX_HELD_STDERR = 1024 * 1024
CLIXML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
# What a WinRM conversation raises when it cannot be had (winrm_problem names it).
WINRM_FAILURES = (WinRMError, requests.RequestException, SpnegoError, ImportError)
ERRNO_REASON = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")
CERTIFICATE_REASON = re.compile(r"certificate verify failed: ([^(]+?)\s*\(")


@dataclass(frozen=True, slots=True)
class Connection:
    """Where and how to reach the target's WinRM service."""

    target: str
    url: str
    options: dict[str, Any]


def _flag(target: TargetSnapshot, name: str) -> bool | None:
    value = target.vars.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise rejected(f"target {target.name!r}: vars.{name} must be true or false")


def connection_for(target: TargetSnapshot, credential: Revealed) -> Connection:
    """The pypsrp settings for a target and its credential. HTTPS is used on port 5986 or when
    the target's `vars.winrm_ssl` says so; the certificate is checked unless the credential's
    `verify_tls` is false."""
    if credential.kind is not CredentialKind.winrm:
        raise rejected(
            f"credential {credential.name!r} is a {credential.kind} credential; "
            "WinRM needs a winrm credential"
        )
    ssl = _flag(target, "winrm_ssl")
    if ssl is None:
        ssl = target.port == HTTPS_PORT
    transport = credential.transport or WinrmTransport.ntlm
    # ntlm, kerberos and credssp encrypt each message over HTTP; basic cannot.
    encryption = "auto"
    if transport is WinrmTransport.basic and not ssl:
        if not _flag(target, "winrm_allow_unencrypted"):
            raise rejected(
                f"basic authentication over HTTP would send the password of credential "
                f"{credential.name!r} in clear; use HTTPS (port 5986 or vars.winrm_ssl: true), "
                "another transport, or set vars.winrm_allow_unencrypted: true on target "
                f"{target.name!r}"
            )
        encryption = "never"
    scheme = "https" if ssl else "http"
    return Connection(
        target=target.name,
        url=f"{scheme}://{target.address}:{target.port}/wsman",
        options={
            "server": target.address,
            "port": target.port,
            "ssl": ssl,
            "username": credential.username,
            "password": credential.secret["password"],
            "auth": transport.value,
            "cert_validation": credential.verify_tls,
            "encryption": encryption,
            "operation_timeout": OPERATION_SECONDS,
            "connection_timeout": CONNECT_SECONDS,
            "read_timeout": READ_SECONDS,
        },
    )


def powershell_command(script: str) -> list[str]:
    encoded = base64.b64encode(script.encode("utf-16-le")).decode()
    return [*POWERSHELL, encoded]


# Characters cmd.exe acts on outside quotes; each is escaped with a caret. The quotes are
# escaped too, so cmd.exe never thinks it is inside a quoted string (where a caret is literal).
_CMD_METACHARACTERS = re.compile(r'([()<>&|^"])')


def argv_quoted(arg: str) -> str:
    """`arg` in double quotes by the Windows argv rules (a program's C runtime reads it back as
    one argument): backslashes are doubled only before a quote, quotes are backslash-escaped."""
    quoted, backslashes = ['"'], 0
    for char in arg:
        if char == "\\":
            backslashes += 1
            continue
        quoted.append(
            "\\" * (backslashes * 2 + 1) + '"' if char == '"' else "\\" * backslashes + char
        )
        backslashes = 0
    quoted.append("\\" * (backslashes * 2) + '"')
    return "".join(quoted)


def cmd_argument(arg: str) -> str:
    """One argument as cmd.exe must see it for the program to receive it unchanged: argv-quoted,
    then every cmd.exe metacharacter (the quotes included) caret-escaped. `%`, `!` and line
    breaks cannot be escaped this way; the `with` model refuses them (jobspec/actions.py)."""
    return _CMD_METACHARACTERS.sub(r"^\1", argv_quoted(arg))


def cmd_command(command: str, args: list[str]) -> list[str]:
    # `command` is a cmd.exe command line as written; each of `args` is one argument.
    return [command, *(cmd_argument(arg) for arg in args)]


def readable_stderr(text: str) -> str:
    """PowerShell run with -EncodedCommand writes its error stream as CLIXML (`#< CLIXML`
    then serialized records); keep the error records' text and drop progress records."""
    start = text.find(CLIXML_MARK)
    if start < 0:
        return text
    try:
        # The target's own output, which pypsrp parses the same way; expat >= 2.4.1 refuses
        # entity expansion bombs.
        root = ET.fromstring(text[start + len(CLIXML_MARK) :].strip())  # noqa: S314
    except ET.ParseError:
        return text
    errors = [
        element.text or "" for element in root.iter(CLIXML_STRING) if element.get("S") == "Error"
    ]
    readable = CLIXML_ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), "".join(errors))
    return text[:start] + readable.replace("\r\n", "\n")


class _Decoded:
    """A byte stream from Windows as text: UTF-8 (the shell's codepage) with CRLF as LF, even
    when a character or a CRLF is split between two Receive answers. Bytes that are not UTF-8
    arrive as `\\xNN` (opsconductor.text's rule)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors=OUTPUT_ERRORS)
        self._carriage_return = False

    def decode(self, data: bytes, final: bool = False) -> str:
        text = self._decoder.decode(data, final)
        if self._carriage_return:
            text, self._carriage_return = "\r" + text, False
        if text.endswith("\r") and not final:
            text, self._carriage_return = text[:-1], True
        return text.replace("\r\n", "\n")


class _Cancelled(Exception):
    pass


Emit = Callable[[str, str], None]


class WinrsProcess:
    """One process in a fresh WinRS shell, run to its end from a worker thread."""

    def __init__(self, connection: Connection, command: list[str], emit: Emit):
        self._connection = connection
        self._command = command
        self._emit = emit
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    def __call__(self) -> int | None:
        with WSMan(**self._connection.options) as wsman:
            shell = WinRS(wsman, codepage=UTF8_CODEPAGE)
            shell.open()
            try:
                executable, *arguments = self._command
                answer = shell.command(executable, arguments)
                command_id = answer.findtext("rsp:CommandResponse/rsp:CommandId", "", NAMESPACES)
                try:
                    return self._wait(shell, command_id)
                finally:
                    # Ends the process if it still runs (a cancel) and frees it on the host.
                    with suppress(WinRMError, requests.RequestException):
                        shell.signal(SignalCode.TERMINATE, command_id)
            finally:
                with suppress(WinRMError, requests.RequestException):
                    shell.close()

    def _wait(self, shell: WinRS, command_id: str) -> int | None:
        streams = {"stdout": _Decoded(), "stderr": _Decoded()}
        while not self._cancelled.is_set():
            try:
                state, exit_code, buffers = shell.receive(
                    "stdout stderr", command_id, timeout=RECEIVE_SECONDS
                )
            except WSManFaultError as fault:
                if fault.code == OPERATION_TIMED_OUT:
                    continue
                raise
            done = state == CommandState.DONE
            for name, decoder in streams.items():
                if text := decoder.decode(buffers.get(name, b""), final=done):
                    self._emit(name, text)
            if done:
                return exit_code
        raise _Cancelled


class WinrmActions:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], keyring: KeyRing):
        self._sessionmaker = sessionmaker
        self._credentials = StepCredentials(sessionmaker, keyring)
        # Its own threads: long commands must not occupy the loop's default executor, which
        # name resolution for every other connection of this worker waits on.
        self._threads = ThreadPoolExecutor(MAX_PARALLEL_COMMANDS, thread_name_prefix="winrm")

    @activity.defn(name="winrm-step")
    async def run_step(self, request: StepRequest) -> StepResult:
        target = request.target
        if target is None:
            raise rejected(f"{request.action} needs a target")
        mask = SecretMask()
        secrets, credential = await self._credentials.reveal(request, target, mask)
        powershell = request.action == "winrm.powershell"
        if powershell:
            script = render_inputs(request, WinrmPowershell, mask, secrets=secrets)
            command, expect = powershell_command(script.script), script.expect_exit
        else:
            inputs = render_inputs(request, WinrmCmd, mask, secrets=secrets)
            command, expect = cmd_command(inputs.command, inputs.args), inputs.expect_exit
        length = len(" ".join(command))
        if length > MAX_COMMAND_LINE:
            field = "with.script" if powershell else "with.command"
            raise rejected(
                f"{field}: the command line would be {length} characters, over cmd.exe's "
                f"limit of {MAX_COMMAND_LINE} (PowerShell scripts are sent UTF-16 and base64 "
                "encoded, about 2.7 characters per character)"
            )
        connection = connection_for(target, credential)
        try:
            result = await self._execute(request, connection, command, powershell, mask)
        except WINRM_FAILURES as error:
            raise _problem(error, connection, credential, mask) from None
        return check_exit(result, expect)

    async def _execute(
        self,
        request: StepRequest,
        connection: Connection,
        command: list[str],
        powershell: bool,
        mask: SecretMask,
    ) -> StepResult:
        loop = asyncio.get_running_loop()
        async with RunLogStream(
            self._sessionmaker,
            request.run_id,
            request.step_id,
            connection.target,
            request.attempt(attempt()),
            mask,
        ) as log:
            stdout, stderr = OutputTail("stdout", log), OutputTail("stderr", log)
            # PowerShell's CLIXML error stream is only readable whole: it reaches the run log
            # once the process ended.
            held_stderr = ""

            def emit(stream: str, text: str) -> None:
                nonlocal held_stderr
                if stream == "stderr" and powershell:
                    held_stderr = (held_stderr + text)[-MAX_HELD_STDERR:]
                    return
                loop.call_soon_threadsafe((stdout if stream == "stdout" else stderr).add, text)

            process = WinrsProcess(connection, command, emit)
            running = loop.run_in_executor(self._threads, process)
            running.add_done_callback(_collect)
            try:
                async with heartbeating():
                    exit_code = await asyncio.shield(running)
            except asyncio.CancelledError:
                # Stop waiting for the process; give the thread a moment to end it and
                # delete the shell, then let the cancellation through.
                process.cancel()
                with suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(running), CLEANUP_SECONDS)
                raise
            if held_stderr:
                stderr.add(readable_stderr(held_stderr))
        return exit_result(exit_code, stdout.result(mask), stderr.result(mask))


def _collect(future: "asyncio.Future[int | None]") -> None:
    # A thread abandoned after a cancel may still end with an error; nobody waits for it.
    if not future.cancelled():
        future.exception()


def _reason(error: BaseException) -> str:
    text = str(error)
    if match := ERRNO_REASON.search(text):
        return match.group(1).strip()
    return text or type(error).__name__


def winrm_problem(
    error: BaseException, connection: Connection, credential: Revealed
) -> tuple[str, bool]:
    """What went wrong on which target, never the password; and whether a retry may help."""
    where = f"{connection.target} ({connection.url})"
    transport = connection.options["auth"]
    if isinstance(error, AuthenticationError | SpnegoError):
        return (
            f"authentication as {credential.username!r} on {where} failed "
            f"(credential {credential.name!r}, transport {transport})"
        ), False
    if isinstance(error, requests.exceptions.SSLError):
        certificate = CERTIFICATE_REASON.search(str(error))
        if certificate:
            return (
                f"the TLS certificate of {where} is not trusted ({certificate.group(1)}); "
                "give the worker its CA (REQUESTS_CA_BUNDLE), or set verify_tls: false on "
                f"credential {credential.name!r} to skip the check"
            ), False
        return f"TLS with {where} failed: {_reason(error)}", False
    if isinstance(error, requests.RequestException):
        return f"cannot connect to {where}: {_reason(error)}", True
    if isinstance(error, ImportError):
        return f"transport {transport} is not installed on this worker: {error}", False
    if isinstance(error, WSManFaultError):
        return f"WinRM on {where} refused the request: {error.message}", True
    if isinstance(error, WinRMTransportError):
        return f"WinRM on {where} answered HTTP {error.code}", True
    return f"WinRM on {where} failed: {error}", True


def _problem(
    error: BaseException, connection: Connection, credential: Revealed, mask: SecretMask
) -> ApplicationError:
    message, retryable = winrm_problem(error, connection, credential)
    message = mask.apply(message)
    if retryable:
        return failed(message, StepResult(attempt=attempt(), error=message))
    return rejected(message)
