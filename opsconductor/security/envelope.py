"""Envelope encryption for secrets at rest: AES-256-GCM under a fresh data key per record.

The data key is wrapped (AES-256-GCM too) by the master key, whose id is stored beside it, so a
key ring can still open records wrapped by retired master keys and `keys rotate` can re-wrap
them without touching the ciphertext. The caller binds each record to its identity through
associated data (e.g. the credential id and kind), so a ciphertext copied onto another record
does not open.
"""

import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
DATA_KEY_BYTES = 32


class DecryptionFailed(Exception):
    """The ciphertext, its associated data or its key do not match."""


def key_id(key: bytes) -> str:
    """A short, stable, non-secret name for a master key (safe to store and log)."""
    return hashlib.sha256(b"opsconductor-key-id:" + key).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Sealed:
    ciphertext: bytes
    nonce: bytes
    wrapped_key: bytes
    key_nonce: bytes
    key_id: str


class KeyRing:
    """The current master key, which wraps new data keys, and retired ones, which still unwrap."""

    def __init__(self, current: bytes, retired: tuple[bytes, ...] = ()):
        self.current_id = key_id(current)
        self._keys = {key_id(key): key for key in (*retired, current)}

    def knows(self, identifier: str) -> bool:
        return identifier in self._keys

    def seal(self, plaintext: bytes, associated_data: bytes) -> Sealed:
        data_key = AESGCM.generate_key(bit_length=DATA_KEY_BYTES * 8)
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, associated_data)
        wrapped_key, key_nonce = self._wrap(data_key, self.current_id)
        return Sealed(ciphertext, nonce, wrapped_key, key_nonce, self.current_id)

    def open(self, sealed: Sealed, associated_data: bytes) -> bytes:
        data_key = self._unwrap(sealed)
        try:
            return AESGCM(data_key).decrypt(sealed.nonce, sealed.ciphertext, associated_data)
        except InvalidTag as error:
            raise DecryptionFailed("the secret does not match its record") from error

    def rewrap(self, sealed: Sealed) -> Sealed:
        """The same ciphertext with its data key wrapped by the current master key."""
        if sealed.key_id == self.current_id:
            return sealed
        wrapped_key, key_nonce = self._wrap(self._unwrap(sealed), self.current_id)
        return Sealed(sealed.ciphertext, sealed.nonce, wrapped_key, key_nonce, self.current_id)

    def _wrap(self, data_key: bytes, identifier: str) -> tuple[bytes, bytes]:
        nonce = os.urandom(NONCE_BYTES)
        wrapped = AESGCM(self._keys[identifier]).encrypt(nonce, data_key, identifier.encode())
        return wrapped, nonce

    def _unwrap(self, sealed: Sealed) -> bytes:
        master = self._keys.get(sealed.key_id)
        if master is None:
            raise DecryptionFailed(
                f"master key {sealed.key_id} is not configured (add it to MASTER_KEYS_OLD)"
            )
        try:
            return AESGCM(master).decrypt(
                sealed.key_nonce, sealed.wrapped_key, sealed.key_id.encode()
            )
        except InvalidTag as error:
            raise DecryptionFailed("the data key does not match its master key") from error
