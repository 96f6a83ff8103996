"""`ssh.command` and `ssh.script`, on the `ssh` queue (activity `ssh-step`).

The step's `with` block is rendered here, on the worker: `secret('name')` reads a credential of
kind `secret` through the vault (every read logged) and its value is masked in everything the
step streams or returns. Output streams to the run log line by line while the command runs;
the activity heartbeats, and a cancelled run kills the remote process.
"""

import asyncio
import re
import shlex
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import Any

import asyncssh
from jinja2 import Environment, TemplateSyntaxError, nodes
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from opsconductor.activities.run_log import RunLogStream
from opsconductor.activities.ssh_connect import Endpoint, SshProblem, ssh_connection
from opsconductor.activities.steps import (
    SecretMask,
    attempt,
    bounded,
    failed,
    rejected,
    render_inputs,
)
from opsconductor.db import unit_of_work
from opsconductor.jobspec.actions import SshCommand, SshScript
from opsconductor.jobspec.runtime import StepRequest, StepResult, TargetSnapshot
from opsconductor.jobspec.templates import TemplateProblem, is_template
from opsconductor.models.credential import CredentialKind
from opsconductor.security.envelope import KeyRing
from opsconductor.services.vault import (
    CredentialUnavailable,
    Purpose,
    Revealed,
    reveal,
    reveal_named,
)

HEARTBEAT_SECONDS = 5
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Shells take a script on stdin with `-s -- args`; other interpreters (python, perl, ruby)
# read it from `-`.
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh"})
# Kept in memory per stream: what `bounded` keeps, plus room for its truncation note.
MAX_CAPTURED = 2 * 64 * 1024

_parser = Environment(autoescape=False)  # noqa: S701 (parsing only: nothing is rendered)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def secret_names(with_: dict[str, Any]) -> list[str]:
    """The names `secret('…')` reads in a `with` block, so they are fetched before rendering
    (rendering is synchronous; the vault is not). Only literal names are supported."""
    names: list[str] = []
    for text in _strings(with_):
        if not is_template(text):
            continue
        try:
            tree = _parser.parse(text)
        except TemplateSyntaxError:
            continue  # rendering reports it, with the step's context
        for call in tree.find_all(nodes.Call):
            if not (isinstance(call.node, nodes.Name) and call.node.name == "secret"):
                continue
            if len(call.args) != 1 or not isinstance(call.args[0], nodes.Const):
                raise rejected("secret() takes one literal credential name, e.g. secret('db')")
            names.append(str(call.args[0].value))
    return list(dict.fromkeys(names))


def _resolver(values: dict[str, str]) -> Callable[[str], str]:
    def resolve(name: str) -> str:
        if name not in values:
            raise TemplateProblem(f"secret({name!r}) takes one literal credential name")
        return values[name]

    return resolve


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
        return f"sudo -n -- {prefix}sh -c {shlex.quote(command)}"
    return f"export {assignments}; {command}" if assignments else command


def _script_command(inputs: SshScript) -> str:
    interpreter = shlex.split(inputs.interpreter)
    if not interpreter:
        raise rejected("with.interpreter: is empty")
    stdin_args = ["-s", "--"] if interpreter[-1].rsplit("/", 1)[-1] in SHELLS else ["-"]
    words = [*interpreter, *stdin_args, *inputs.args]
    return " ".join(shlex.quote(word) for word in words)


class _Capture:
    """One output stream: to the run log as it arrives, and its tail kept for the result."""

    def __init__(self, name: str, log: RunLogStream):
        self._name = name
        self._log = log
        self._text = ""

    async def drain(self, reader: asyncssh.SSHReader[str]) -> None:
        async for chunk in reader:
            self._log.write(self._name, chunk)
            self._text = (self._text + chunk)[-MAX_CAPTURED:]

    def result(self, mask: SecretMask) -> str:
        return bounded(mask.apply(self._text).rstrip("\n"))


class SshActions:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], keyring: KeyRing):
        self._sessionmaker = sessionmaker
        self._keyring = keyring

    @activity.defn(name="ssh-step")
    async def run_step(self, request: StepRequest) -> StepResult:
        target = request.target
        if target is None:
            raise rejected(f"{request.action} needs a target")
        mask = SecretMask()
        purpose = Purpose.run_step(request.run_id, request.step_id, target.name)
        try:
            secrets, credential = await self._reveal(request, target, purpose)
        except CredentialUnavailable as error:
            raise rejected(str(error)) from None
        for value in [*credential.values(), *secrets.values()]:
            mask.remember(value)
        resolver = _resolver(secrets)
        if request.action == "ssh.script":
            script = render_inputs(request, SshScript, mask, secrets=resolver)
            command, stdin = _script_command(script), script.script
            env, workdir, sudo, expect = script.env, None, script.sudo, script.expect_exit
        else:
            inputs = render_inputs(request, SshCommand, mask, secrets=resolver)
            command, stdin = inputs.command, None
            env, workdir, sudo, expect = inputs.env, inputs.workdir, inputs.sudo, inputs.expect_exit
        assert isinstance(sudo, bool)
        assert isinstance(expect, list)
        full_command = _wrapped(command, env, workdir, sudo)
        endpoint = Endpoint(target.id, target.name, target.address, target.port)
        try:
            async with ssh_connection(self._sessionmaker, endpoint, credential) as (connection, _):
                result = await self._execute(request, connection, full_command, stdin, mask)
        except SshProblem as problem:
            message = mask.apply(str(problem))
            if problem.retryable:
                raise failed(message, StepResult(attempt=attempt(), error=message)) from None
            raise rejected(message) from None
        if result.exit_code not in expect:
            shown = "a signal" if result.exit_code is None else str(result.exit_code)
            raise failed(
                f"exited with {shown}, expected {', '.join(map(str, expect))}",
                result,
            )
        return result

    async def _reveal(
        self, request: StepRequest, target: TargetSnapshot, purpose: Purpose
    ) -> tuple[dict[str, str], Revealed]:
        """The values `secret()` reads and the login credential. Each decryption commits its
        own access row, so a later failure cannot roll the record of an earlier one back."""
        values: dict[str, str] = {}
        for name in secret_names(request.with_):
            revealed = await self._reveal_one(name, None, purpose)
            if revealed.kind is not CredentialKind.secret:
                raise CredentialUnavailable(
                    f"secret({name!r}) reads credentials of kind secret; "
                    f"{name!r} is {revealed.kind}"
                )
            values[name] = revealed.secret["value"]
        if request.credential is None and target.credential_id is None:
            raise CredentialUnavailable(
                f"target {target.name!r} has no credential and the step names none"
            )
        credential = await self._reveal_one(request.credential, target.credential_id, purpose)
        return values, credential

    async def _reveal_one(
        self, name: str | None, credential_id: uuid.UUID | None, purpose: Purpose
    ) -> Revealed:
        async with unit_of_work(self._sessionmaker) as session:
            if name is not None:
                return await reveal_named(session, self._keyring, name, purpose)
            assert credential_id is not None
            return await reveal(session, self._keyring, credential_id, purpose)

    async def _execute(
        self,
        request: StepRequest,
        connection: asyncssh.SSHClientConnection,
        command: str,
        stdin: str | None,
        mask: SecretMask,
    ) -> StepResult:
        target = request.target.name if request.target else None
        async with RunLogStream(
            self._sessionmaker, request.run_id, request.step_id, target, mask.apply
        ) as log:
            stdout, stderr = _Capture("stdout", log), _Capture("stderr", log)
            process = await connection.create_process(command, encoding="utf-8", errors="replace")
            heartbeat = asyncio.create_task(_heartbeat())
            try:
                if stdin is not None:
                    process.stdin.write(stdin)
                process.stdin.write_eof()
                await asyncio.gather(stdout.drain(process.stdout), stderr.drain(process.stderr))
                completed = await process.wait()
            except asyncio.CancelledError:
                # The run was cancelled (or the step timed out): stop the remote command
                # rather than leave it running unattended.
                with suppress(OSError, asyncssh.Error):
                    process.kill()
                process.close()
                raise
            finally:
                heartbeat.cancel()
        exit_code = completed.exit_status
        if exit_code is not None and exit_code < 0:
            exit_code = None  # asyncssh says -1 for "killed by a signal"
        outputs = {
            "exit_code": exit_code,
            "stdout": stdout.result(mask),
            "stderr": stderr.result(mask),
        }
        return StepResult(
            attempt=attempt(),
            exit_code=exit_code,
            stdout=outputs["stdout"],
            stderr=outputs["stderr"],
            outputs=outputs,
        )


async def _heartbeat() -> None:
    while True:
        activity.heartbeat()
        await asyncio.sleep(HEARTBEAT_SECONDS)
