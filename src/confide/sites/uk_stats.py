"""The UK statistics exception (R12): consent-free, anonymous first-party statistics.

The Data (Use and Access) Act 2025 (s.112) adds to PECR a Schedule A1 exception for storage or
access used only to produce statistics about the use of one's own website, with clear
information and a simple way to object. It is a UK rule: an EU site has no such exception
(ePrivacy art. 5(3) still needs consent), so the setting is refused unless the site's country
is GB, and a site cannot leave GB while it is on.

What we do under it is the least the exception allows: before consent, on an opt-in site, the
widget sends a page view with no identifier and stores nothing; the server adds one to a
counter per day and path (``tracking/anonymous.py``) and keeps nothing else. The privacy panel
says so and offers "Object"; an objection is a marker in our frame's own (per-site
partitioned) storage that stops the counts from that browser.
"""

from __future__ import annotations

from confide.errors import InvalidInput
from confide.sites.models import Site

UK = "GB"


def applies(site: Site) -> bool:
    """Whether a beacon without consent may be counted anonymously on this site: the client
    opted in, the site is in the UK, and it asks for consent (a "notice" site tracks anyway)."""
    return bool(site.uk_stats_exception) and site.country == UK and site.consent_mode == "opt-in"


def check(uk_stats_exception: bool, country: str) -> None:
    """Refuse the exception for a site outside the UK, with the reason."""
    if uk_stats_exception and country != UK:
        raise InvalidInput(
            "The UK statistics exception (PECR Schedule A1) applies only to sites in the United "
            f"Kingdom (country GB), not to a site in {country}. Nothing was changed."
        )


def checked_country(value: str) -> str:
    code = value.strip().upper()
    if len(code) != 2 or not code.isascii() or not code.isalpha():
        raise InvalidInput(
            f"country must be a two-letter ISO code such as GB or DE, not {value!r}."
        )
    return code
