"""Where consent comes first whatever a site's mode says: visitors in the EU/EEA and the UK (R10).

Why: a site in ``notice`` mode tracks until the visitor says no, which is lawful for visitors
elsewhere but not for those covered by PECR reg. 6 or ePrivacy art. 5(3): for them nothing
non-essential may be stored on or read from the device before consent. Such a visitor gets
``opt-in`` behaviour on every site: the widget's config says so (no cookie before consent) and
the server refuses their beacons without consent, whatever the widget does.

The country comes from the same offline database as usage data, looked up on the truncated
address, and is not stored for this (a site that switched location data off still gets the
protection). An address with no known country follows the site's mode: the protection is for
the visitors the database places, and the default mode (``opt-in``) covers everyone else.
"""

from __future__ import annotations

#: EU member states, the rest of the EEA, the UK and the Crown dependencies and Gibraltar
#: (which apply PECR-equivalent rules).
CONSENT_FIRST = frozenset(
    {
        *("AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE"),
        *("IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE"),
        *("IS", "LI", "NO", "GB", "GI", "GG", "JE", "IM"),
    }
)


def consent_mode_for(site_mode: str, country: str | None) -> str:
    """The mode that applies to a visitor from ``country`` on a site in ``site_mode``."""
    if site_mode == "opt-in" or country in CONSENT_FIRST:
        return "opt-in"
    return site_mode
