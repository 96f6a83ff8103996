"""Where a document's secret fields come from: `{file: PATH}`, `{env: NAME}`, or (only with
`--allow-inline-secrets`) the value itself. Values are read only when a secret is sent, and
never printed: errors name the field and the reference, not what it holds."""

import os
import re
from pathlib import Path
from typing import Any

from opsconductor.cli.client import CliError

# The secret fields of each credential type (the API's services/vault.SECRET_MODELS), kept here
# so the client imports nothing of the server.
CREDENTIAL_SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "ssh_key": ("private_key", "passphrase"),
    "ssh_password": ("password",),
    "winrm": ("password",),
    "http_basic": ("password",),
    "http_bearer": ("token",),
    "secret": ("value",),
}
# Fields a credential of the type may leave out.
OPTIONAL_SECRET_FIELDS = frozenset({"passphrase"})
EXPORT_VARIABLE_PREFIX = "OPSCONDUCTOR_SECRET_"


def export_variable(name: str, field: str) -> str:
    """`OPSCONDUCTOR_SECRET_<NAME>_<FIELD>`, the name upper-cased with other characters as `_`."""
    return EXPORT_VARIABLE_PREFIX + re.sub(r"[^A-Z0-9]", "_", f"{name}_{field}".upper())


def export_reference(name: str, field: str) -> dict[str, str]:
    return {"env": export_variable(name, field)}


def resolve(reference: Any, where: str, base: Path, allow_inline: bool) -> str | None:
    """The secret a reference names; None for an optional field left unset (`{env: X}` with X
    unset is an error: a reference promises a value)."""
    if isinstance(reference, str):
        if not allow_inline:
            raise CliError(
                f"{where} holds a secret inline",
                [
                    "name where it comes from: {file: PATH} or {env: VARIABLE}, "
                    "or pass --allow-inline-secrets"
                ],
            )
        return reference
    if not isinstance(reference, dict) or len(reference) != 1:
        raise CliError(f"{where} must be {{file: PATH}} or {{env: VARIABLE}}")
    ((source, value),) = reference.items()
    if source == "env":
        found = os.environ.get(str(value))
        if found is None:
            raise CliError(f"{where}: the environment variable {value} is not set")
        return found
    if source == "file":
        path = Path(os.path.expanduser(str(value)))
        path = path if path.is_absolute() else base / path
        try:
            # One trailing newline is an editor's, not the secret's.
            return path.read_text(encoding="utf-8").removesuffix("\n")
        except (OSError, UnicodeDecodeError) as error:
            raise CliError(f"{where}: cannot read {path}: {error.__class__.__name__}") from None
    raise CliError(f"{where}: unknown secret source {source!r} (file or env)")
