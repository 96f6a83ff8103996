"""The console's per-session CSRF token, for API calls that carry the session cookie.

Derived from the session id with the token signing key, so it needs no storage, differs per
session, and cannot be computed by a page on another origin. A bearer header needs none:
a browser never adds one on its own.
"""

import hashlib
import hmac
import uuid

CSRF_HEADER = "X-CSRF-Token"


def csrf_token(signing_key: bytes, session_id: uuid.UUID) -> str:
    return hmac.new(signing_key, b"csrf:" + session_id.bytes, hashlib.sha256).hexdigest()


def csrf_matches(signing_key: bytes, session_id: uuid.UUID | None, presented: str | None) -> bool:
    if session_id is None or not presented:
        return False
    return hmac.compare_digest(csrf_token(signing_key, session_id), presented)
