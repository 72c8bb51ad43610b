"""Emails and phone numbers visitors type in chat, indexed so that rights requests reach them.

Why: a visitor often writes "reach me at jane@example.org" and the operator never captures it
into a person. The policy attributes what is said in a chat to the visitor, so a verified
request by that email (access, deletion) must find the chat (R23, R51). We keep no value, only
the same keyed blind index a person's ``email_index``/``phone_index`` holds: one row per
(message, detail) in ``chat_identifiers``, found by ``PrivacyService._matches``.

Where, and why there: in the message writer, **in the transaction that stores the message**,
on both paths (the SQLAlchemy one in ``writer.py`` and the sqlite3 one in ``sqlite_commit.py``).
The writer's only hook, ``on_committed``, runs after the commit: rows written there could be
lost after the message was acked, or miss an erasure that ran in between, and a row can never
exist for a message that rolled back here. The detection itself runs before the transaction
(:meth:`Spotter.mark`, on the event loop), so the write lock is not held while parsing.

Cost: the message path is hot (about 135 µs of CPU per message, bench/chat_load.py). Each
visitor message first gets two cheap checks, an "@" and a run of at least
:data:`MIN_PHONE_DIGITS` digits that is not glued to letters (a microsecond or two); only a
message that passes one is parsed with ``find_details`` (email-validator and the phonenumbers
matcher: tens to hundreds of µs). Agents' and system messages are not looked at: the dealer's
own phone number in an agent's reply is not the visitor's.

Normalisation: ``find_details`` gives the forms ``leads/fields.py`` stores for a person
(email-validator's normalised address; E.164, read in the site's country) and
``vault.blind_index(kind, value)`` is the same keyed HMAC, so a request matches either.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from confide.leads.detect import find_details
from confide.lru import LruDict
from confide.sites.models import Site
from confide.storage.engine import Database
from confide.storage.scope import Scope

if TYPE_CHECKING:
    from confide.chat.writer import Draft

log = logging.getLogger(__name__)

#: (kind, blind index) of each email and phone a message holds, de-duplicated.
Found = tuple[tuple[str, str], ...]
BlindIndex = Callable[[str, str | None], str | None]
KINDS = ("email", "phone")
#: The fewest digits worth handing to phonenumbers: valid national numbers are longer in the
#: countries we serve (10-11 in GB and the US), and prices, mileages and years are shorter.
MIN_PHONE_DIGITS = 7
# At least MIN_PHONE_DIGITS digits with at most two separator characters between them
# ("+44 (0)7700 900-123"). Every repetition consumes a digit and a match continues after the
# last one, so the scan stays linear in the text (a failed start retries at most a few digits).
# No leading "+": a pattern that starts with a digit class lets the engine skip to digits.
_PHONE_RUN = re.compile(r"\d(?:[ ().-]{0,2}\d){6,}")  # 6 = MIN_PHONE_DIGITS - 1


def may_hold_email(text: str) -> bool:
    return "@" in text


def may_hold_phone(text: str) -> bool:
    """A run of enough digits that is not part of a word: phonenumbers (at the leniency
    ``find_details`` uses) refuses a number glued to letters, such as "ab1234567cd"."""
    for run in _PHONE_RUN.finditer(text):
        start, end = run.span()
        if not (start and text[start - 1].isalpha()) and not (
            end < len(text) and text[end].isalpha()
        ):
            return True
    return False


def may_hold_details(text: str) -> bool:
    """The cheap checks: whether ``text`` may hold an email or a phone number at all."""
    return may_hold_email(text) or may_hold_phone(text)


def detect(text: str, region: str | None, blind_index: BlindIndex) -> Found:
    """The emails and phones in ``text`` as (kind, blind index); ``blind_index`` is the vault's."""
    seen: dict[tuple[str, str], None] = {}
    for d in find_details(text, region):
        index = blind_index(d.kind, d.normalised) if d.kind in KINDS else None
        if index is not None:
            seen[(d.kind, index)] = None
    return tuple(seen)


def rows(
    organisation_id: str,
    conversation_id: str,
    visitor_id: str,
    seq: int,
    found: Found,
    now: datetime,
) -> list[dict[str, Any]]:
    """``chat_identifiers`` rows for one stored message."""
    return [
        {
            "organisation_id": organisation_id,
            "conversation_id": conversation_id,
            "visitor_id": visitor_id,
            "seq": seq,
            "kind": kind,
            "blind_index": index,
            "created_at": now,
        }
        for kind, index in found
    ]


class Spotter:
    """Marks each visitor draft with what it holds (``Draft.found``) before its batch commits.

    The site's country reads national phone numbers; it is cached per site for
    :attr:`REGION_TTL_S`, so a message costs no query, and a changed country is used soon.
    """

    REGION_TTL_S = 300.0

    def __init__(self, db: Database) -> None:
        self._db = db
        self._regions: LruDict[str, tuple[str | None, float]] = LruDict(10_000)

    async def mark(self, batch: Sequence[Draft]) -> None:
        todo = [
            d
            for d in batch
            if d.found is None and d.author_role == "visitor" and d.visitor_id is not None
        ]
        candidates = [d for d in todo if may_hold_details(d.text)]
        for d in todo:
            d.found = ()
        if not candidates:
            return
        regions = await self._regions_of({d.site_id for d in candidates})
        blind_index = self._db.vault.blind_index
        for d in candidates:
            try:
                d.found = detect(d.text, regions.get(d.site_id), blind_index)
            except Exception:  # a detail we cannot parse must not cost the visitor the message
                log.exception("contact details could not be read from a message; not indexed")

    async def _regions_of(self, site_ids: set[str]) -> dict[str, str | None]:
        now = time.monotonic()
        out: dict[str, str | None] = {}
        for site_id in site_ids:
            cached = self._regions.get(site_id)
            if cached is not None and cached[1] > now:
                out[site_id] = cached[0]
        missing = site_ids - set(out)
        if missing:
            async with self._db.session(Scope.system(), read_only=True) as s:
                loaded = (
                    await s.execute(select(Site.id, Site.country).where(Site.id.in_(missing)))
                ).all()
            for site_id, country in loaded:
                self._regions[site_id] = (country, now + self.REGION_TTL_S)
                out[site_id] = country
        return out
