"""`test-connection` on the `ssh` queue: a real login and `true`, for POST /targets/{id}/test.

The test answers (ok, detail) rather than failing, so the API can show why it did not work;
a refused host key comes back with the fingerprint that was presented, which the operator may
then accept.
"""

import time

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.activities.ssh_connect import Endpoint, SshProblem, ssh_connection
from opsconductor.contracts import implements
from opsconductor.contracts.connection_tests import (
    ConnectionTestRequest,
    ConnectionTestResult,
    test_connection,
)
from opsconductor.db import unit_of_work
from opsconductor.models.target import Target
from opsconductor.security.envelope import KeyRing
from opsconductor.services.vault import CredentialUnavailable, Purpose, reveal

TEST_COMMAND = "true"
TEST_TIMEOUT_SECONDS = 20


class ConnectionTests:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], keyring: KeyRing):
        self._sessionmaker = sessionmaker
        self._keyring = keyring

    @implements(test_connection)
    async def run_test(self, request: ConnectionTestRequest) -> ConnectionTestResult:
        started = time.perf_counter()
        try:
            async with unit_of_work(self._sessionmaker) as session:
                target = await session.get(Target, request.target_id)
                if target is None:
                    return ConnectionTestResult(ok=False, detail="the target no longer exists")
                if target.credential_id is None:
                    return ConnectionTestResult(
                        ok=False, detail=f"target {target.name!r} has no credential"
                    )
                credential = await reveal(
                    session,
                    self._keyring,
                    target.credential_id,
                    Purpose.connection_test(target.name),
                )
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
        except CredentialUnavailable as error:
            return ConnectionTestResult(ok=False, detail=str(error))
        except TimeoutError:
            return ConnectionTestResult(
                ok=False,
                latency_ms=_elapsed_ms(started),
                detail=f"`{TEST_COMMAND}` did not finish within {TEST_TIMEOUT_SECONDS}s",
            )
        ok = result.exit_status == 0
        return ConnectionTestResult(
            ok=ok,
            latency_ms=_elapsed_ms(started),
            detail=(
                f"logged in as {credential.username!r} and ran `{TEST_COMMAND}`"
                if ok
                else f"logged in, but `{TEST_COMMAND}` exited with {result.exit_status}"
            ),
            host_key_fingerprint=fingerprint,
        )


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
