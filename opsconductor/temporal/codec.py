"""The payload codec: every payload Temporal stores (inputs, results, failures' details,
memos, heartbeats) is AES-256-GCM encrypted before it leaves our processes.

The codec key is derived from the master key (so there is one secret to manage) and each
payload names the id of the key that sealed it, so retired master keys still decode old history.

Our processes refuse a payload that is not sealed: anyone who reaches the Temporal frontend can
start a workflow with plain JSON (`temporal workflow start --input ...`), and a worker that
decoded it would run our activities on their say-so. Sealing proves the payload was written by
a holder of the master key. The refusal is a non-retryable application error, which the SDK
turns into the workflow's (or activity's) failure with our reason, instead of a task retried
for ever. Only the Web UI's codec endpoint shows plain payloads as they are.
"""

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec
from temporalio.exceptions import ApplicationError

from opsconductor.security.envelope import key_id
from opsconductor.security.keys import ProcessKeys

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NONCE_BYTES = 12
_DERIVATION_LABEL = b"opsconductor temporal payload codec v1"


class PayloadDecryptionError(Exception):
    pass


class PlainPayloadRefused(ApplicationError):
    """A payload not sealed by our codec. Non-retryable: a worker decoding a workflow task's
    activation fails the workflow itself on it (nothing runs), rather than failing the task."""

    def __init__(self, encoding: bytes):
        super().__init__(
            f"refused a payload that is not encrypted (encoding "
            f"{encoding.decode(errors='replace')!r}): OpsConductor's workers only take payloads "
            "sealed with the master key, so workflows must be started through OpsConductor (or "
            "a client with its codec), not with plain JSON",
            type="PlainPayloadRefused",
            non_retryable=True,
        )


def derive_codec_key(master_key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_DERIVATION_LABEL).derive(
        master_key
    )


def codec_key_id(master_key: bytes) -> str:
    """The id payloads sealed under `master_key` carry in their `encryption-key-id` metadata."""
    return key_id(derive_codec_key(master_key))


def payloads_in(message: Message, field: str = "") -> Iterator[tuple[str, Payload]]:
    """Every payload anywhere inside `message` (a history event, a schedule description), with
    the name of the field that holds it."""
    if isinstance(message, Payload):
        yield field, message
        return
    for descriptor, value in message.ListFields():
        if isinstance(value, Message):
            items: Iterable[object] = (value,)
        elif isinstance(value, Mapping):
            items = value.values()
        elif isinstance(value, Iterable) and not isinstance(value, str | bytes):
            items = value
        else:
            continue
        for item in items:
            if isinstance(item, Message):
                yield from payloads_in(item, descriptor.name)


def sealing_key_ids(message: Message) -> set[str]:
    """The codec key ids of every encrypted payload inside `message`: which master keys are
    needed to read it."""
    return {
        payload.metadata.get(KEY_ID_METADATA, b"").decode()
        for _, payload in payloads_in(message)
        if payload.metadata.get("encoding") == ENCODING
    }


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: ProcessKeys, *, accept_plain: bool = False):
        # Only for showing payloads (the Web UI's codec endpoint): never for running anything.
        self._accept_plain = accept_plain
        current = derive_codec_key(keys.master_key)
        self._current_id = key_id(current)
        self._ciphers = {
            key_id(derived): AESGCM(derived)
            for derived in (derive_codec_key(old) for old in keys.retired_master_keys)
        }
        self._ciphers[self._current_id] = AESGCM(current)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._decrypt(payload) for payload in payloads]

    def _encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._current_id].encrypt(
            nonce, payload.SerializeToString(), self._current_id.encode()
        )
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: self._current_id.encode()},
            data=nonce + sealed,
        )

    def _decrypt(self, payload: Payload) -> Payload:
        encoding = payload.metadata.get("encoding", b"")
        if encoding != ENCODING:
            if self._accept_plain:
                return payload
            raise PlainPayloadRefused(encoding)
        identifier = payload.metadata.get(KEY_ID_METADATA, b"").decode()
        cipher = self._ciphers.get(identifier)
        if cipher is None:
            raise PayloadDecryptionError(
                f"payload sealed by unknown key {identifier!r}; add the retired master key "
                "to OPSCONDUCTOR_MASTER_KEYS_OLD"
            )
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            return Payload.FromString(cipher.decrypt(nonce, sealed, identifier.encode()))
        except InvalidTag as error:
            raise PayloadDecryptionError("payload does not match its key") from error
