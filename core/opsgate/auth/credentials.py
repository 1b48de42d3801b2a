"""Token minting and password hashing.

Tokens are 256-bit random strings with a kind prefix (`ogs_` service,
`oga_` agent, `ogx_` session); only their SHA-256 is stored. Passwords are
hashed with Argon2id (argon2-cffi).
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

SERVICE_PREFIX = "ogs_"
AGENT_PREFIX = "oga_"
SESSION_PREFIX = "ogx_"

_hasher = PasswordHasher()
# Verified against when the username is unknown, so timing does not tell.
_DUMMY_HASH = _hasher.hash("opsgate-dummy-password")


def mint(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def display_prefix(token: str) -> str:
    """The part of a token safe to show in listings."""
    return token[:8]


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> tuple[bool, str | None]:
    """(ok, new hash if the stored one needs rehashing)."""
    try:
        _hasher.verify(password_hash or _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, None
    if password_hash is None:
        return False, None
    return True, (_hasher.hash(password) if _hasher.check_needs_rehash(password_hash) else None)
