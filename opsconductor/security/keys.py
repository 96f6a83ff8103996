"""The process's long-lived keys: the key-encryption key of the vault and the token signing key.

In production both come from configuration. In development they are generated once into the
data folder (mode 0600) so that a second `opsconductor up` can still read what the first wrote.
"""

import base64
import binascii
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from opsconductor.config import Settings
from opsconductor.errors import ConfigurationError

KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class ProcessKeys:
    master_key: bytes
    retired_master_keys: tuple[bytes, ...]
    signing_key: bytes


def decode_master_key(value: str, setting: str) -> bytes:
    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ConfigurationError(f"{setting} is not valid base64") from error
    if len(key) != KEY_BYTES:
        raise ConfigurationError(f"{setting} must decode to {KEY_BYTES} bytes, got {len(key)}")
    return key


def new_base64_key() -> str:
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def read_or_create_secret_file(path: Path, make: Callable[[], str] = new_base64_key) -> str:
    """Return the secret stored at path, creating it with owner-only permissions if absent."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        # O_EXCL makes two processes starting at once agree on a single secret.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    value = make()
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value + "\n")
    return value


def load_process_keys(settings: Settings) -> ProcessKeys:
    keys_dir = settings.resolved_data_dir / "keys"
    if settings.master_key is not None:
        master_text = settings.master_key.get_secret_value()
    elif settings.is_development:
        master_text = read_or_create_secret_file(keys_dir / "master.key")
    else:
        raise ConfigurationError("OPSCONDUCTOR_MASTER_KEY is required in production")

    if settings.secret_key is not None:
        signing_key = settings.secret_key.get_secret_value().encode()
    elif settings.is_development:
        signing_key = read_or_create_secret_file(keys_dir / "signing.key").encode()
    else:
        raise ConfigurationError("OPSCONDUCTOR_SECRET_KEY is required in production")

    retired = tuple(
        decode_master_key(key.get_secret_value(), f"OPSCONDUCTOR_MASTER_KEYS_OLD[{index}]")
        for index, key in enumerate(settings.master_keys_old)
    )
    return ProcessKeys(
        master_key=decode_master_key(master_text, "OPSCONDUCTOR_MASTER_KEY"),
        retired_master_keys=retired,
        signing_key=signing_key,
    )
