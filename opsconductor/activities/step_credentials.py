"""What a remote step decrypts on the worker: the values its `secret('name')` calls read and
the credential it logs in with. Every value is remembered by the step's mask, so none of them
leaves the step in clear."""

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.activities.steps import SecretMask, rejected
from opsconductor.contracts.steps import StepRequest, TargetSnapshot
from opsconductor.db import unit_of_work
from opsconductor.jobspec.templates import SecretResolver, TemplateProblem, secret_calls
from opsconductor.jobspec.validation import strings_in
from opsconductor.models.credential import CredentialKind
from opsconductor.security.envelope import KeyRing
from opsconductor.services.vault import (
    CredentialRefused,
    CredentialUnavailable,
    Purpose,
    Revealed,
    record_accesses,
    reveal,
    reveal_named,
)


def secret_names(with_: dict[str, Any]) -> list[str]:
    """The names `secret('…')` reads in a `with` block, so they are fetched before rendering
    (rendering is synchronous; the vault is not). Only literal names are supported."""
    names: list[str] = []
    for _, text in strings_in(with_, "with"):
        for name in secret_calls(text):
            if name is None:
                raise rejected("secret() takes one literal credential name, e.g. secret('db')")
            names.append(name)
    return list(dict.fromkeys(names))


def _resolver(values: dict[str, str]) -> SecretResolver:
    def resolve(name: str) -> str:
        if name not in values:
            raise TemplateProblem(f"secret({name!r}) takes one literal credential name")
        return values[name]

    return resolve


class StepCredentials:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], keyring: KeyRing):
        self._sessionmaker = sessionmaker
        self._keyring = keyring

    async def reveal(
        self, request: StepRequest, target: TargetSnapshot, mask: SecretMask
    ) -> tuple[SecretResolver, Revealed]:
        """The resolver for `secret()` and the login credential (the step's `credential:` or
        the target's). A missing or unusable credential rejects the step."""
        purpose = Purpose.run_step(request.run_id, request.step_id, [target.name])
        try:
            secrets, credential = await self._reveal(request, target, purpose)
        except CredentialUnavailable as error:
            raise rejected(str(error)) from None
        for value in [*credential.values(), *secrets.values()]:
            mask.remember(value)
        return _resolver(secrets), credential

    async def _reveal(
        self, request: StepRequest, target: TargetSnapshot, purpose: Purpose
    ) -> tuple[dict[str, str], Revealed]:
        """Each decryption commits its own access row, so a later failure cannot roll the
        record of an earlier one back."""
        values = await self._secret_values(request, purpose)
        if request.credential is None and target.credential_id is None:
            raise CredentialUnavailable(
                f"target {target.name!r} has no credential and the step names none"
            )
        credential = await self._reveal_one(request.credential, target.credential_id, purpose)
        return values, credential

    async def reveal_for_targets(
        self, request: StepRequest, targets: list[TargetSnapshot], mask: SecretMask
    ) -> tuple[SecretResolver, dict[str, Revealed | CredentialUnavailable]]:
        """`reveal` for many targets at once (a chunk's): the values `secret()` reads and each
        distinct login credential decrypted once, each decryption logged with one access row
        per target it serves. Per target name, its credential, or why it has none usable. A
        `secret()` that cannot be read rejects them all."""
        everyone = Purpose.run_step(request.run_id, request.step_id, [t.name for t in targets])
        try:
            values = await self._secret_values(request, everyone)
        except CredentialUnavailable as error:
            raise rejected(str(error)) from None
        for value in values.values():
            mask.remember(value)
        by_login: dict[str | uuid.UUID, list[TargetSnapshot]] = {}
        logins: dict[str, Revealed | CredentialUnavailable] = {}
        for target in targets:
            login = request.credential or target.credential_id
            if login is None:
                logins[target.name] = CredentialUnavailable(
                    f"target {target.name!r} has no credential and the step names none"
                )
            else:
                by_login.setdefault(login, []).append(target)
        for login, users in by_login.items():
            purpose = Purpose.run_step(request.run_id, request.step_id, [t.name for t in users])
            revealed: Revealed | CredentialUnavailable
            try:
                name = login if isinstance(login, str) else None
                credential_id = login if isinstance(login, uuid.UUID) else None
                revealed = await self._reveal_one(name, credential_id, purpose)
                for value in revealed.values():
                    mask.remember(value)
            except CredentialUnavailable as error:
                revealed = error
            logins.update({target.name: revealed for target in users})
        return _resolver(values), logins

    async def reveal_without_target(
        self,
        request: StepRequest,
        credential: str | None,
        mask: SecretMask,
        targets: list[str] | None = None,
    ) -> tuple[SecretResolver, Revealed | None]:
        """For actions that log in to no target (http.request): the values `secret()` reads
        and, when the step names one, the credential it authenticates with. Read for the
        request's target, or once for `targets` (a chunk's), logged per target."""
        owner = targets if targets is not None else [request.target.name] if request.target else []
        purpose = Purpose.run_step(request.run_id, request.step_id, owner)
        try:
            values = await self._secret_values(request, purpose)
            revealed = await self._reveal_one(credential, None, purpose) if credential else None
        except CredentialUnavailable as error:
            raise rejected(str(error)) from None
        for value in [*values.values(), *(revealed.values() if revealed else [])]:
            mask.remember(value)
        return _resolver(values), revealed

    async def _secret_values(self, request: StepRequest, purpose: Purpose) -> dict[str, str]:
        values: dict[str, str] = {}
        for name in secret_names(request.with_):
            revealed = await self._reveal_one(name, None, purpose)
            if revealed.kind is not CredentialKind.secret:
                raise CredentialUnavailable(
                    f"secret({name!r}) reads credentials of kind secret; "
                    f"{name!r} is {revealed.kind}"
                )
            values[name] = revealed.secret["value"]
        return values

    async def _reveal_one(
        self, name: str | None, credential_id: uuid.UUID | None, purpose: Purpose
    ) -> Revealed:
        try:
            async with unit_of_work(self._sessionmaker) as session:
                if name is not None:
                    return await reveal_named(session, self._keyring, name, purpose)
                assert credential_id is not None
                return await reveal(session, self._keyring, credential_id, purpose)
        except CredentialRefused as refusal:
            # The refusal is on the access log although the step fails.
            async with unit_of_work(self._sessionmaker) as session:
                await record_accesses(session, refusal.accesses)
            raise
