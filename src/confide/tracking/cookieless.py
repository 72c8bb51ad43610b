"""Cookieless counting (R21): a visitor key and a visit worked out on the server.

On a site with ``tracking_identity = "cookieless"`` the widget stores nothing on the device and
sends beacons without ids. The server derives

    visitor key = HMAC-SHA256(salt of the current period, site id | truncated address |
                              browser family | major version | OS family | device class)

from what every request carries anyway, reduced first: the address truncated to /24 or /48
(``geo.truncate``) and the User-Agent reduced to four coarse values (``useragent.reduce``).
Neither the address nor the User-Agent is kept; the key goes where a cookie's hash goes
(``site_visitors.cookie_hash``), so returning visitors are counted by the writer exactly as
with a cookie, within one salt period. The salt rotates (``tracking/salts.py``), so the key
does too: a browser seen yesterday is a new visitor today.

A visit is the visitor key's latest visit while its last beacon is under 30 minutes old (the
widget's own rule for cookie visits), else a new one. Its id is derived from the key and the
minute it starts, not drawn at random: two first beacons of one browser that race (two tabs
opened together) get the same id, and the writer's batch plan already merges a visit started
twice. The id stays on the server (the widget never learns it), so the plan's per-visit page
numbering works unchanged; the widget learns only the page's number (``seq`` in the reply) for
its pings.

The price of the method, documented for clients: two people behind one /24 with the same
browser, OS and device class count as one visitor; and a chat cannot be linked to the visit (the
frame has no visit id to send).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import timedelta

from sqlalchemy import select

from confide.clock import utcnow
from confide.storage.engine import Database
from confide.storage.scope import Scope
from confide.tracking.geo import truncate
from confide.tracking.models import SiteVisitor, Visit
from confide.tracking.useragent import Agent

#: A visit ends after 30 minutes without a beacon (the widget's IDLE for cookie visits).
IDLE = timedelta(minutes=30)


def visitor_key(salt: bytes, site_id: str, ip: str | None, agent: Agent) -> str:
    """64 hex characters; the same for one site, /24 (or /48) and reduced browser while the
    salt lasts."""
    parts = (
        site_id,
        truncate(ip or "") or "",
        agent.browser,
        agent.browser_major or "",
        agent.os,
        agent.device,
    )
    return hmac.new(salt, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()


def new_visit_id(key: str) -> str:
    """22 characters of [A-Za-z0-9_-] (a visit id's form), from the key and the minute: the
    minute in base 36 first, as the widget's visit ids start with their time, so new visits
    sort after old ones in the indexes on visit ids (docs/performance.md)."""
    minute = utcnow().replace(second=0, microsecond=0)
    digest = hashlib.sha256(f"visit:{key}:{minute.isoformat()}".encode()).digest()
    return (
        _base36(int(minute.timestamp() * 1000)).rjust(8, "0")
        + (base64.urlsafe_b64encode(digest).decode()[:14])
    )


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out


async def visit_for(db: Database, site_id: str, key: str) -> str:
    """The id of the key's visit in progress on this site, or of a new one."""
    since = utcnow() - IDLE
    async with db.session(Scope.system(), read_only=True) as s:
        latest = await s.scalar(
            select(Visit.id)
            .join(SiteVisitor, SiteVisitor.id == Visit.site_visitor_id)
            .where(
                SiteVisitor.cookie_hash == key,
                Visit.site_id == site_id,
                Visit.last_seen_at >= since,
            )
            .order_by(Visit.last_seen_at.desc())
            .limit(1)
        )
    return latest or new_visit_id(key)
