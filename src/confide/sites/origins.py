"""Origins: the scheme://host[:port] form browsers send in the ``Origin`` header."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from confide.errors import InvalidInput


@lru_cache(maxsize=4096)
def normalise_origin(value: str) -> str:
    """``https://Example.com/path`` → ``https://example.com``; refuse anything else.

    Cached: every beacon and widget socket checks its ``Origin`` header, and a site's visitors
    send the same few values (a refusal is not cached: it raises)."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"Not an origin (scheme://host[:port]): {value!r}")
    if parts.username or parts.password:
        raise InvalidInput(f"An origin has no credentials: {value!r}")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default_port = {"http": 80, "https": 443}[parts.scheme]
    port = f":{parts.port}" if parts.port and parts.port != default_port else ""
    return f"{parts.scheme}://{host}{port}"
