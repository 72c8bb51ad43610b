"""Recording visits and page views, and the operators' live view of who is on a site.

What is recorded follows the visitor's choices, checked here and not only in the widget:
nothing for Do Not Track or Global Privacy Control (a GPC signal is recorded as an opt-out,
without identifiers: :mod:`confide.tracking.gpc_once`), nothing for a site in opt-in mode
unless the beacon says consent was granted, nothing for known bots. Writes go through
:class:`TrackingWriter` (group commit).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from confide.chat import recipients
from confide.chat.views import iso
from confide.clock import utcnow
from confide.errors import InvalidState, NotFound
from confide.ids import pseudonym
from confide.realtime.broker import Broker, Event
from confide.sites import uk_stats
from confide.sites.models import Site
from confide.storage.engine import Database
from confide.storage.scope import Scope
from confide.tracking import anonymous, cookieless
from confide.tracking.events import Beacon
from confide.tracking.geo import GeoLocator
from confide.tracking.gpc_once import GpcOnce
from confide.tracking.models import Invitation, OptOut, PageView, Visit
from confide.tracking.salts import Salts
from confide.tracking.useragent import Agent, reduce
from confide.tracking.useragent import warm as warm_agents
from confide.tracking.writer import Pending, TrackingWriter, Usage

#: A visit counts as "on the site now" while beacons keep coming (the widget pings every 15 s).
LIVE_WINDOW = timedelta(minutes=2)


@dataclass
class IngestResult:
    accepted: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    #: "gpc", "dnt", "consent", "bot": why nothing was recorded; "anonymous": only counted (R12)
    honoured: str | None = None
    invite: dict[str, str] | None = None  # an operator's invitation waiting for this visit
    seq: int | None = None  # cookieless sites: the number of the page view just recorded


@dataclass(frozen=True)
class Request:
    ip: str | None
    user_agent: str
    dnt: bool
    gpc: bool


class TrackingService:
    def __init__(
        self,
        db: Database,
        broker: Broker,
        geo: GeoLocator,
        *,
        busy_window_ms: float = 0.0,
        inline: bool | None = None,
        unwatched: Callable[[str], bool] = lambda _site_id: False,
    ) -> None:
        self.db = db
        #: True when no agent can be watching a site's live visitors: the update is not built.
        self._unwatched = unwatched
        self.broker = broker
        self.geo = geo
        self.writer = TrackingWriter(db, busy_window_ms=busy_window_ms, inline=inline)
        self._gpc = GpcOnce()
        self.salts = Salts(db)

    def warm(self) -> None:
        """Load the geo database and compile the UA regexes now, not on a visitor's request."""
        self.geo.warm()
        warm_agents()

    async def ingest(self, site: Site, beacon: Beacon, request: Request) -> IngestResult:
        result = IngestResult(rejected=beacon.rejected)
        optout = any(e.type == "optout" for e in beacon.events)
        if request.gpc or optout:
            if optout or self._gpc.first(site.id, beacon):
                await self._record_opt_out(site)
            result.honoured = "gpc"
            return result
        if request.dnt:
            result.honoured = "dnt"
            return result
        # A refusal is honoured in either mode: "notice" tracks until the visitor says no.
        if beacon.consent == "denied" or (
            site.consent_mode == "opt-in" and beacon.consent != "granted"
        ):
            result.honoured = "consent"
            if beacon.consent is None and uk_stats.applies(site):  # R12: counts, nothing else
                if reduce(request.user_agent).bot:
                    result.honoured = "bot"
                else:
                    result.accepted = await anonymous.count(self.db, site, beacon)
                    result.honoured = "anonymous"
            return result
        agent = reduce(request.user_agent)
        if agent.bot:
            result.honoured = "bot"
            return result
        key = None
        if site.tracking_identity == "cookieless" and beacon.events:
            beacon, key = await self._cookieless(site, beacon, request.ip, agent)
        if not beacon.events or beacon.visit is None:
            return result
        # only for a new visit; without what the client switched off (R03)
        usage = functools.partial(self._usage, request.ip, agent, site.disabled_categories)
        future = asyncio.get_running_loop().create_future()
        visit, invite = await self.writer.submit(Pending(site, beacon, usage, future, key))
        if visit is not None:
            result.accepted = len(beacon.events)
            result.invite = invite
            if key is not None and any(e.type == "pageview" for e in beacon.events):
                result.seq = int(visit["pageviews"])
            if self._unwatched(site.id):
                return result
            await self.broker.publish(
                Event(
                    (recipients.site_agents(site.id),),
                    {"type": "visitor", "visitor": live_row(visit)},
                )
            )
        else:
            result.rejected = [
                *result.rejected,
                *(
                    {"index": i, "reason": "unknown visit (start it with a pageview)"}
                    for i in range(len(beacon.events))
                ),
            ]
        return result

    async def _cookieless(
        self, site: Site, beacon: Beacon, ip: str | None, agent: Agent
    ) -> tuple[Beacon, str]:
        """The beacon with the visit the server derived and no ids from the browser (R21):
        any the browser sent anyway are ignored."""
        salt = await self.salts.current(site.salt_rotation)
        key = cookieless.visitor_key(salt, site.id, ip, agent)
        visit = await cookieless.visit_for(self.db, site.id, key)
        return dataclasses.replace(beacon, visit=visit, visitor=None), key

    def _usage(self, ip: str | None, agent: Agent, disabled: list[str] | None = None) -> Usage:
        off = disabled or ()
        place = self.geo.locate(ip) if "user.location" not in off else None
        device = "system.device" not in off
        return Usage(
            place.country if place else None,
            place.region if place else None,
            place.city if place else None,
            agent.browser if device else None,
            agent.browser_major if device else None,
            agent.os if device else None,
            agent.device if device else None,
        )

    async def invite(
        self, scope: Scope, site_ids: frozenset[str], visit_id: str, text: str, from_name: str
    ) -> None:
        """Queue an invitation for a visitor browsing one of the inviter's sites right now."""
        text = text.strip()[:500] or "Hi! Can we help you with anything?"
        async with self.db.session(scope) as s:
            visit = await s.scalar(select(Visit).where(Visit.id == visit_id))
            if visit is None or (visit.site_id not in site_ids and not scope.unrestricted):
                raise NotFound("No such visitor.")
            if visit.last_seen_at < utcnow() - LIVE_WINDOW:
                raise InvalidState("This visitor has left the site.")
            s.add(
                Invitation(
                    organisation_id=visit.organisation_id,
                    site_id=visit.site_id,
                    visit_id=visit.id,
                    text=text,
                    from_name=from_name[:100],
                    created_at=utcnow(),
                )
            )

    async def _record_opt_out(self, site: Site) -> None:
        async with self.db.session(Scope.system()) as s:
            s.add(
                OptOut(
                    organisation_id=site.organisation_id,
                    site_id=site.id,
                    method="gpc",
                    received_at=utcnow(),
                )
            )

    async def live_visitors(self, scope: Scope, site_ids: frozenset[str]) -> list[dict[str, Any]]:
        """Visits on these sites with a beacon in the last two minutes, most recent first."""
        since = utcnow() - LIVE_WINDOW
        async with self.db.session(scope, read_only=True) as s:
            visits = (
                await s.scalars(
                    select(Visit)
                    .where(Visit.site_id.in_(site_ids), Visit.last_seen_at >= since)
                    .order_by(Visit.last_seen_at.desc())
                    .limit(500)
                )
            ).all()
        return [live_row(_columns(v)) for v in visits]

    async def visit_detail(self, scope: Scope, visit_id: str) -> dict[str, Any]:
        """A visit's usage data and its navigation path (the chat panel's context)."""
        async with self.db.session(scope, read_only=True) as s:
            visit = await s.scalar(select(Visit).where(Visit.id == visit_id))
            if visit is None:
                raise NotFound("No such visit.")
            pages = (
                await s.scalars(
                    select(PageView).where(PageView.visit_id == visit_id).order_by(PageView.seq)
                )
            ).all()
        row = live_row(_columns(visit))
        row["path"] = [
            {"seq": p.seq, "path": p.path, "title": p.title, "at": iso(p.at), "seconds": p.seconds}
            for p in pages
        ]
        return row


def _columns(visit: Visit) -> dict[str, Any]:
    return {c.key: getattr(visit, c.key) for c in Visit.__table__.columns}


def live_row(v: dict[str, Any]) -> dict[str, Any]:
    """A visit as the console's live list shows it (see docs/tracking.md)."""
    label_source = v["site_visitor_id"] or v["id"]
    return {
        "id": v["id"],
        "site_id": v["site_id"],
        "label": pseudonym(label_source),
        "page": {"path": v["last_path"], "title": v["last_title"]} if v["last_path"] else None,
        "pageviews": v["pageviews"],
        "started_at": iso(v["started_at"]),
        "last_seen_at": iso(v["last_seen_at"]),
        "seconds": v["seconds"],
        "location": {"country": v["country"], "region": v["region"], "city": v["city"]},
        "device": {
            "browser": v["browser"],
            "browser_major": v["browser_major"],
            "os": v["os"],
            "class": v["device"],
        },
        "referrer": v["referrer"],
        "channel": v["channel"],
        "returning": v["is_returning"],
        "conversation_id": v["conversation_id"],
    }
