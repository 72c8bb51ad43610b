"""Origins: the scheme://host[:port] form browsers send in the ``Origin`` header."""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from urllib.parse import urlsplit

from confide.errors import InvalidInput

#: A DNS host name in its ASCII form (browsers send internationalised names as punycode).
_HOST = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*\.?")


@lru_cache(maxsize=4096)
def normalise_origin(value: str) -> str:
    """``https://Example.com/path`` → ``https://example.com``; refuse anything else.

    Cached: every beacon and widget socket checks its ``Origin`` header, and a site's visitors
    send the same few values (a refusal is not cached: it raises). Anything a browser would
    never send (a port out of range, a broken IPv6 literal, a wildcard, a space) is refused
    here with a reason, not left to fail later as a server error."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        raise InvalidInput(f"Not an origin (scheme://host[:port]): {value!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"Not an origin (scheme://host[:port]): {value!r}")
    if parts.username or parts.password:
        raise InvalidInput(f"An origin has no credentials: {value!r}")
    host = _host(parts.hostname.lower(), value)
    default_port = {"http": 80, "https": 443}[parts.scheme]
    shown_port = f":{port}" if port and port != default_port else ""
    return f"{parts.scheme}://{host}{shown_port}"


def _host(host: str, value: str) -> str:
    if ":" in host:  # an IPv6 literal (urlsplit checked the brackets)
        try:
            return f"[{ipaddress.IPv6Address(host.split('%', 1)[0]).compressed}]"
        except ValueError:
            raise InvalidInput(f"Not an origin (bad IPv6 address): {value!r}") from None
    if "*" in host:
        raise InvalidInput(f"Wildcards are not supported; list each origin: {value!r}")
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidInput(f"Not an origin (bad host name): {value!r}") from None
    if not _HOST.fullmatch(ascii_host):
        raise InvalidInput(f"Not an origin (bad host name): {value!r}")
    return ascii_host
