"""How a site recognises a returning browser for its statistics (R21).

``cookie`` (the default, and the behaviour before this setting existed): a random first-party
cookie ``_cfv`` and a per-tab visit id in ``sessionStorage``, both set by the widget once
tracking is allowed. ``cookieless``: the widget stores nothing on the device for statistics;
the server derives a visitor key from a rotating salt, the site, the truncated address and the
reduced browser (:mod:`confide.tracking.cookieless`). The identity method is not a consent
basis: an opt-in site records nothing before consent either way, and DNT/GPC stop both.

``salt_rotation`` says how long one salt (so one visitor key) lives: daily by default, as
Plausible does; weekly or monthly count a returning visitor over a longer span at the cost of
a longer-lived pseudonym, which is the client's choice to make.
"""

from __future__ import annotations

from confide.errors import InvalidInput

TRACKING_IDENTITIES = ("cookie", "cookieless")
SALT_ROTATIONS = ("daily", "weekly", "monthly")


def checked_identity(value: str) -> str:
    if value not in TRACKING_IDENTITIES:
        raise InvalidInput(f"tracking identity must be 'cookie' or 'cookieless', not {value!r}.")
    return value


def checked_rotation(value: str) -> str:
    if value not in SALT_ROTATIONS:
        raise InvalidInput(f"salt rotation must be 'daily', 'weekly' or 'monthly', not {value!r}.")
    return value
