"""The usage data a client may switch off per site (R03: processing follows the client's
documented instructions; a category that is off is never stored).

Only what the widget derives about a browser is switchable: location and device. Pages
viewed and visit length are the behavioural data the service exists to record, and chat is
not optional. A switch applies to visits started after the change (the site cache lives a few
seconds); each change is in the audit log with who and when.
"""

from __future__ import annotations

from collections.abc import Iterable

from confide.errors import InvalidInput

#: Category (as the data map names it) → what it covers, in words for the CLI and the docs.
SWITCHABLE: dict[str, str] = {
    "user.location": "country, region and city (looked up from the shortened IP address)",
    "system.device": "browser family and version, operating system and device class",
}


def checked(categories: Iterable[str]) -> list[str]:
    """The categories, sorted and de-duplicated, or a clear error naming the valid ones."""
    out = sorted(set(categories))
    unknown = [c for c in out if c not in SWITCHABLE]
    if unknown:
        raise InvalidInput(f"Unknown category {unknown[0]!r}: use {' or '.join(SWITCHABLE)}.")
    return out
