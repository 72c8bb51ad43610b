"""Rotating salts for cookieless visitor keys (R21), and their destruction.

Why rotate: the cookieless visitor key is ``HMAC(salt, site, truncated address, reduced
browser)``. Under a fixed secret that key would be a lasting pseudonym for a network and a
browser; under a salt that is deleted when its period ends, a key can be recomputed only while
the period lasts. Once the salt is gone, nobody (us included) can link today's visitors to
yesterday's, or work out a past key from an address. Plausible uses a daily salt; Umami offers
day, week or month (``getSalt``): so do we, per site (``Site.salt_rotation``).

One salt per rotation scope and period serves every site (the site id is hashed too, so keys
of two sites never match). The table holds, per scope, the current period's salt only: every
use deletes the salts of past periods in that scope, and so does the roll-up schedule
(:meth:`Salts.rotate`, every minute), so a past salt outlives its period by a minute at most
even on a site that gets no visitor. A daily salt is therefore never older than about 24 h.

Several nodes may create the current salt at once: the unique (rotation, period_start) key lets
one insert win, and the others read the winner's salt.
"""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta

from sqlalchemy import Delete, Select, delete, select
from sqlalchemy.exc import IntegrityError

from confide.clock import utcnow
from confide.sites.identity import SALT_ROTATIONS, checked_rotation
from confide.storage.engine import Database
from confide.storage.scope import Scope
from confide.tracking.models import TrackingSalt

SALT_BYTES = 32


def period_start(rotation: str, now: datetime) -> date:
    """The first day (UTC) of the period ``now`` falls in: the day, its ISO week's Monday, or
    the first of its month."""
    day = now.date()
    if rotation == "daily":
        return day
    if rotation == "weekly":
        return day - timedelta(days=day.weekday())
    if rotation == "monthly":
        return day.replace(day=1)
    checked_rotation(rotation)
    raise AssertionError("unreachable")


class Salts:
    def __init__(self, db: Database) -> None:
        self._db = db
        #: (rotation, period start) -> salt: a beacon must not cost a read for its salt.
        self._cache: dict[tuple[str, date], bytes] = {}

    async def current(self, rotation: str) -> bytes:
        """The salt of the current period for this rotation, created on first use (and the
        past periods' salts in its scope destroyed)."""
        start = period_start(rotation, utcnow())
        salt = self._cache.get((rotation, start))
        if salt is None:
            salt = await self._current(rotation, start)
            self._forget_before(rotation, start)
            self._cache[(rotation, start)] = salt
        return salt

    async def rotate(self) -> int:
        """Destroy every salt of a past period, in every scope (the roll-up schedule calls
        this, so salts go even when no beacon asks for a new one). Returns how many went."""
        now = utcnow()
        gone = 0
        async with self._db.session(Scope.system()) as s:
            for rotation in SALT_ROTATIONS:
                start = period_start(rotation, now)
                result = await s.execute(_past(rotation, start))
                gone += int(getattr(result, "rowcount", 0) or 0)
                self._forget_before(rotation, start)
        return gone

    async def _current(self, rotation: str, start: date) -> bytes:
        try:
            async with self._db.session(Scope.system()) as s:
                await s.execute(_past(rotation, start))
                found = await s.scalar(_of(rotation, start))
                if found is None:
                    found = secrets.token_hex(SALT_BYTES)
                    s.add(
                        TrackingSalt(
                            rotation=rotation, period_start=start, salt=found, created_at=utcnow()
                        )
                    )
        except IntegrityError:  # another node inserted this period's salt first: use theirs
            async with self._db.session(Scope.system(), read_only=True) as s:
                found = await s.scalar(_of(rotation, start))
            if found is None:
                raise
        return bytes.fromhex(found)

    def _forget_before(self, rotation: str, start: date) -> None:
        for key in [k for k in self._cache if k[0] == rotation and k[1] < start]:
            del self._cache[key]


def _past(rotation: str, start: date) -> Delete:
    return delete(TrackingSalt).where(
        TrackingSalt.rotation == rotation, TrackingSalt.period_start < start
    )


def _of(rotation: str, start: date) -> Select[str]:
    return select(TrackingSalt.salt).where(
        TrackingSalt.rotation == rotation, TrackingSalt.period_start == start
    )
