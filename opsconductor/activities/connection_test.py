"""Connection tests for POST /targets/{id}/test: `test-connection` on the `ssh` queue (a real
login and `true`) and `test-winrm-connection` on the `winrm` queue (a real WinRM login and
`hostname` in a WinRS shell, as winrm.cmd steps run).

The test answers (ok, detail) rather than failing, so the API can show why it did not work;
a refused host key comes back with the fingerprint that was presented, which the operator may
then accept.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.exceptions import ApplicationError

from opsconductor.activities.ssh_connect import Endpoint, SshProblem, ssh_connection
from opsconductor.activities.winrm import (
    WINRM_FAILURES,
    WinrsProcess,
    connection_for,
    winrm_problem,
)
from opsconductor.contracts import implements
from opsconductor.contracts.connection_tests import (
    ConnectionTestRequest,
    ConnectionTestResult,
    test_connection,
    test_winrm_connection,
)
from opsconductor.db import unit_of_work
from opsconductor.models.target import Target
from opsconductor.security.envelope import KeyRing
from opsconductor.services.targets.selection import snapshot
from opsconductor.services.vault import CredentialUnavailable, Purpose, Revealed, reveal

TEST_COMMAND = "true"
TEST_TIMEOUT_SECONDS = 20
WINRM_TEST_COMMAND = "hostname"


@dataclass(frozen=True)
class _Login:
    target: Target
    credential: Revealed


class _NoLogin(Exception):
    """Why there is nothing to log in with: the test's answer."""


class ConnectionTests:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], keyring: KeyRing):
        self._sessionmaker = sessionmaker
        self._keyring = keyring

    async def _login(self, request: ConnectionTestRequest) -> _Login:
        async with unit_of_work(self._sessionmaker) as session:
            target = await session.get(Target, request.target_id)
            if target is None:
                raise _NoLogin("the target no longer exists")
            if target.credential_id is None:
                raise _NoLogin(f"target {target.name!r} has no credential")
            try:
                credential = await reveal(
                    session,
                    self._keyring,
                    target.credential_id,
                    Purpose.connection_test(target.name),
                )
            except CredentialUnavailable as error:
                raise _NoLogin(str(error)) from None
        return _Login(target, credential)

    async def _tested(
        self,
        request: ConnectionTestRequest,
        test: Callable[[_Login, float], Awaitable[ConnectionTestResult]],
    ) -> ConnectionTestResult:
        started = time.perf_counter()
        try:
            login = await self._login(request)
        except _NoLogin as reason:
            return ConnectionTestResult(ok=False, detail=str(reason))
        return await test(login, started)

    @implements(test_connection)
    async def run_test(self, request: ConnectionTestRequest) -> ConnectionTestResult:
        return await self._tested(request, self._ssh_test)

    @implements(test_winrm_connection)
    async def run_winrm_test(self, request: ConnectionTestRequest) -> ConnectionTestResult:
        return await self._tested(request, self._winrm_test)

    async def _ssh_test(self, login: _Login, started: float) -> ConnectionTestResult:
        target, credential = login.target, login.credential
        try:
            endpoint = Endpoint(target.id, target.name, target.address, target.port)
            async with ssh_connection(self._sessionmaker, endpoint, credential) as (
                connection,
                fingerprint,
            ):
                result = await connection.run(TEST_COMMAND, timeout=TEST_TIMEOUT_SECONDS)
        except SshProblem as problem:
            return ConnectionTestResult(
                ok=False,
                latency_ms=_elapsed_ms(started),
                detail=str(problem),
                host_key_fingerprint=problem.presented_fingerprint,
            )
        except TimeoutError:
            return ConnectionTestResult(
                ok=False,
                latency_ms=_elapsed_ms(started),
                detail=f"`{TEST_COMMAND}` did not finish within {TEST_TIMEOUT_SECONDS}s",
            )
        return _verdict(login, TEST_COMMAND, result.exit_status, started, fingerprint)

    async def _winrm_test(self, login: _Login, started: float) -> ConnectionTestResult:
        target, credential = login.target, login.credential
        try:
            # The same checks and pypsrp settings as a step (an unsafe transport is refused).
            connection = connection_for(snapshot(target), credential)
        except ApplicationError as refused:
            return ConnectionTestResult(ok=False, detail=refused.message)
        # The output is not shown: the exit code says the shell ran the command.
        process = WinrsProcess(connection, [WINRM_TEST_COMMAND], lambda _stream, _text: None)
        try:
            exit_code = await asyncio.wait_for(asyncio.to_thread(process), TEST_TIMEOUT_SECONDS)
        except WINRM_FAILURES as error:
            detail, _retryable = winrm_problem(error, connection, credential)
            return ConnectionTestResult(ok=False, latency_ms=_elapsed_ms(started), detail=detail)
        except TimeoutError:
            process.cancel()
            return ConnectionTestResult(
                ok=False,
                latency_ms=_elapsed_ms(started),
                detail=f"`{WINRM_TEST_COMMAND}` did not finish within {TEST_TIMEOUT_SECONDS}s",
            )
        return _verdict(login, WINRM_TEST_COMMAND, exit_code, started)


def _verdict(
    login: _Login,
    command: str,
    exit_code: int | None,
    started: float,
    fingerprint: str | None = None,
) -> ConnectionTestResult:
    ok = exit_code == 0
    return ConnectionTestResult(
        ok=ok,
        latency_ms=_elapsed_ms(started),
        detail=(
            f"logged in as {login.credential.username!r} and ran `{command}`"
            if ok
            else f"logged in, but `{command}` exited with {exit_code}"
        ),
        host_key_fingerprint=fingerprint,
    )


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
