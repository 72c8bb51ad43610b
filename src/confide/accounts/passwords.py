"""Password hashing with argon2id (argon2-cffi's defaults follow RFC 9106's recommendations)."""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from confide.errors import InvalidInput

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 10
#: One limit for the sign-in form, the page and account creation (argon2 takes any length;
#: this only stops absurd inputs).
MAX_PASSWORD_LENGTH = 1024


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so a wrong email costs the same time as a
    wrong password. Computed on first use, not on import (every CLI command would pay)."""
    return _hasher.hash("confide-timing-equaliser")


def check_length(password: str) -> None:
    """The one rule a new password must meet (account creation, a reset)."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            f"Password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters."
        )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return (
            _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
        )
    except (VerificationError, InvalidHashError):
        return False
