"""Access JWTs and the opaque tokens (refresh, API, password reset).

An opaque token reads `<prefix><lookup>_<secret>`. The lookup finds the row through a unique
index; only the SHA-256 of the secret is stored, and it is compared in constant time. The
prefix says what a leaked string is (secret scanners key on it) and routes a bearer token.
"""

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from opsconductor.errors import NotAuthenticated
from opsconductor.models.user import Role

# Prefixes, not secrets.
API_TOKEN_PREFIX = "oct_"  # noqa: S105
REFRESH_TOKEN_PREFIX = "ocr_"  # noqa: S105
RESET_TOKEN_PREFIX = "ocp_"  # noqa: S105

ALGORITHM = "HS256"
ACCESS_TYPE = "access"
_REQUIRED_CLAIMS = ["sub", "sid", "role", "exp", "iat", "jti", "typ"]

# Deliberately vague: which part of the credential was wrong is nobody's business.
INVALID_CREDENTIALS = "invalid or expired credentials"


@dataclass(frozen=True, slots=True)
class OpaqueToken:
    value: str
    lookup: str
    token_hash: str


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    expires_at: datetime


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_opaque_token(prefix: str) -> OpaqueToken:
    lookup = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return OpaqueToken(f"{prefix}{lookup}_{secret}", lookup, _digest(secret))


def split_opaque_token(value: str, prefix: str) -> tuple[str, str] | None:
    """The (lookup, secret) of a token of this kind, or None when it is not one."""
    if not value.startswith(prefix):
        return None
    lookup, separator, secret = value.removeprefix(prefix).partition("_")
    if not separator or not lookup or not secret:
        return None
    return lookup, secret


def secret_matches(secret: str, token_hash: str) -> bool:
    return hmac.compare_digest(_digest(secret), token_hash)


def issue_access_token(
    signing_key: bytes,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    role: Role,
    now: datetime,
    lifetime: timedelta,
) -> str:
    claims = {
        "sub": str(user_id),
        "sid": str(session_id),
        "role": str(role),
        "iat": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
        "typ": ACCESS_TYPE,
    }
    return jwt.encode(claims, signing_key, algorithm=ALGORITHM)


def read_access_token(signing_key: bytes, token: str) -> AccessClaims:
    try:
        claims = jwt.decode(
            token, signing_key, algorithms=[ALGORITHM], options={"require": _REQUIRED_CLAIMS}
        )
        if claims["typ"] != ACCESS_TYPE:
            raise NotAuthenticated(INVALID_CREDENTIALS)
        return AccessClaims(
            uuid.UUID(claims["sub"]),
            uuid.UUID(claims["sid"]),
            datetime.fromtimestamp(claims["exp"], UTC),
        )
    except (jwt.InvalidTokenError, ValueError, TypeError):
        raise NotAuthenticated(INVALID_CREDENTIALS) from None
