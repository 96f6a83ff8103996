"""Which credentials a job document names: each step's `credential:`, a `with.credential`
(http.request), and every `secret('…')` call in its `with` block. The API checks them against
the requester's grants when a job is saved and a run starts; the worker reads the same names
(docs/security.md)."""

from collections.abc import Iterator
from dataclasses import dataclass

from opsconductor.jobspec.document import JobDocument
from opsconductor.jobspec.templates import is_template, secret_calls
from opsconductor.jobspec.validation import strings_in


@dataclass(frozen=True, slots=True)
class CredentialUse:
    """One place a document names a credential. `name` is None where no static check can tell
    which (a templated name, `secret()` without a literal)."""

    path: str
    name: str | None


def credential_uses(document: JobDocument) -> Iterator[CredentialUse]:
    for index, step in enumerate(document.steps):
        if step.credential is not None:
            yield CredentialUse(f"steps.{index}.credential", step.credential)
        named = step.with_.get("credential")
        if isinstance(named, str):
            literal = None if is_template(named) else named
            yield CredentialUse(f"steps.{index}.with.credential", literal)
        for path, text in strings_in(step.with_, f"steps.{index}.with"):
            for name in secret_calls(text):
                yield CredentialUse(path, name)
