"""Residency (policy 4.2-4.4, R36): personal data stays in the EU/UK, refused at configuration.

Storage, destinations and sub-processors each declare a region code. Configuration that would
put personal data outside the UK/EU/EEA is refused with the reason, not silently tolerated:

- the storage region (``CONFIDE_STORAGE_REGION``) is checked when settings are read and again
  when the application context is built, so ``confide serve`` will not start with ``US``;
- a sub-processor handling personal data (``user.*`` or ``account.*`` categories) must be in the
  UK/EU/EEA; outside, it may only handle ``system.*`` data (say, an uptime monitor).

Destinations are the one deliberate exception: a client may point leads at a CRM outside the
EU/UK, and those deliveries leave with the personal fields removed (``delivery/snapshot.py:
for_region``), which the console and CLI say when the destination is added.

This module is imported by :mod:`confide.settings`; it must stay free of heavy imports.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from confide.delivery.snapshot import PERSONAL_DATA_REGIONS
from confide.errors import InvalidInput

#: Region codes anything may declare (the same list destinations use); other text is a typo.
REGIONS = ("UK", "EU", "EEA", "US", "CA", "AU", "OTHER")
#: Data-category prefixes that are personal data: a visitor's (``user.``) or client staff's
#: (``account.``, policy 2.5). Only ``system.*`` data may leave the EU/UK.
PERSONAL_PREFIXES = ("user.", "account.")
ALLOWED_HINT = "UK, EU or EEA"


def normalise(region: str) -> str:
    code = region.strip().upper()
    if code not in REGIONS:
        raise InvalidInput(f"Region must be one of {', '.join(REGIONS)} (not {region!r}).")
    return code


def inside_eu_uk(region: str) -> bool:
    return region.strip().upper() in PERSONAL_DATA_REGIONS


def personal(categories: list[str]) -> list[str]:
    """The categories in ``categories`` that are personal data."""
    return [c for c in categories if c.startswith(PERSONAL_PREFIXES)]


def require_storage_region(region: str) -> str:
    """The storage region, or :class:`InvalidInput` naming the setting and what to do."""
    code = region.strip().upper()
    if not inside_eu_uk(code):
        raise InvalidInput(
            f"CONFIDE_STORAGE_REGION is {region!r}: personal data is stored only in the EU/UK "
            f"(privacy policy 4.2). Set it to {ALLOWED_HINT} and host the database there."
        )
    return code


def check_subprocessor(name: str, region: str, categories: list[str]) -> str:
    """The normalised region, or the reason this sub-processor may not be engaged."""
    code = normalise(region)
    if not inside_eu_uk(code):
        found = personal(categories)
        if found:
            raise InvalidInput(
                f"{name} is in region {code}, outside the EU/UK, and would handle personal data "
                f"({', '.join(found)}). Personal data stays in the EU/UK (privacy policy 4.2): "
                f"choose a {ALLOWED_HINT} region, or limit it to system.* data."
            )
    return code


#: The settings field's type: checked when settings are read (a clean error at start).
StorageRegion = Annotated[str, AfterValidator(require_storage_region)]
