"""Opaque identifiers and secrets.

Every id a client can see is random (128 bits, url-safe): ids are never sequential, so one
tenant cannot guess another's conversations, and an id reveals nothing about volume.
"""

from __future__ import annotations

import hashlib
import secrets


def new_id() -> str:
    """A 22-character url-safe random id (128 bits)."""
    return secrets.token_urlsafe(16)


def new_secret() -> str:
    """A bearer secret (256 bits). Only its hash is stored."""
    return secrets.token_urlsafe(32)


def new_site_key() -> str:
    """The public key a site puts in its embed snippet. Public, but unguessable."""
    return "site_" + secrets.token_urlsafe(12)


def pseudonym(random_id: str) -> str:
    """ "Visitor 4F2A": a label for agents derived from a random id (reveals nothing else)."""
    return "Visitor " + random_id[:4].upper().replace("-", "X").replace("_", "Y")


def secret_hash(secret: str) -> str:
    """SHA-256 of a high-entropy secret; safe as a lookup key (no salt needed at 256 bits)."""
    return hashlib.sha256(secret.encode()).hexdigest()
