"""Envelope encryption: per-record data keys, bound to their record, readable after rotation."""

import secrets

import pytest

from opsconductor.security.envelope import DecryptionFailed, KeyRing, key_id


def new_key() -> bytes:
    return secrets.token_bytes(32)


def test_seal_and_open_round_trip_with_a_fresh_data_key_each_time() -> None:
    ring = KeyRing(new_key())
    first = ring.seal(b"hunter2", b"credential:1:ssh_password")
    second = ring.seal(b"hunter2", b"credential:1:ssh_password")
    assert first.ciphertext != second.ciphertext
    assert first.wrapped_key != second.wrapped_key
    assert b"hunter2" not in first.ciphertext
    assert ring.open(first, b"credential:1:ssh_password") == b"hunter2"
    assert first.key_id == ring.current_id


def test_a_ciphertext_moved_to_another_record_does_not_open() -> None:
    ring = KeyRing(new_key())
    sealed = ring.seal(b"hunter2", b"credential:1:ssh_password")
    with pytest.raises(DecryptionFailed):
        ring.open(sealed, b"credential:2:ssh_password")


def test_retired_keys_open_and_rewrap_moves_records_to_the_current_key() -> None:
    old, new = new_key(), new_key()
    sealed = KeyRing(old).seal(b"token", b"aad")
    rotated = KeyRing(new, retired=(old,))
    assert rotated.open(sealed, b"aad") == b"token"

    rewrapped = rotated.rewrap(sealed)
    assert rewrapped.key_id == key_id(new)
    assert rewrapped.ciphertext == sealed.ciphertext
    assert KeyRing(new).open(rewrapped, b"aad") == b"token"
    assert rotated.rewrap(rewrapped) is rewrapped


def test_an_unknown_master_key_is_named_in_the_error() -> None:
    sealed = KeyRing(new_key()).seal(b"token", b"aad")
    with pytest.raises(DecryptionFailed, match="MASTER_KEYS_OLD"):
        KeyRing(new_key()).open(sealed, b"aad")
