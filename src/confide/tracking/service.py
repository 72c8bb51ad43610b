"""Recording visits and page views, and the operators' live view of who is on a site.

What is recorded follows the visitor's choices, checked here and not only in the widget:
nothing for Do Not Track or Global Privacy Control (a GPC signal is recorded as an opt-out,
without identifiers), nothing for a site in opt-in mode unless the beacon says consent was
granted, nothing for known bots.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from confide.chat import recipients
from confide.clock import utcnow
from confide.errors import InvalidState, NotFound
from confide.ids import new_id, secret_hash
from confide.realtime.broker import Broker, Event
from confide.sites.models import Site
from confide.storage.engine import Database
from confide.storage.scope import Scope
from confide.tracking import urls
from confide.tracking.events import Beacon
from confide.tracking.events import Event as Hit
from confide.tracking.geo import GeoLocator
from confide.tracking.models import Invitation, OptOut, PageView, SiteVisitor, Visit
from confide.tracking.useragent import reduce
from confide.tracking.useragent import warm as warm_agents

#: A visit counts as "on the site now" while beacons keep coming (the widget pings every 15 s).
LIVE_WINDOW = timedelta(minutes=2)
#: An invitation not picked up by a beacon within this time is stale (the visitor has moved on).
INVITATION_TTL = timedelta(minutes=5)


@dataclass
class IngestResult:
    accepted: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    honoured: str | None = None  # "gpc", "dnt", "consent", "bot": why nothing was recorded
    invite: dict[str, str] | None = None  # an operator's invitation waiting for this visit


@dataclass(frozen=True)
class Request:
    ip: str | None
    user_agent: str
    dnt: bool
    gpc: bool


class TrackingService:
    def __init__(self, db: Database, broker: Broker, geo: GeoLocator) -> None:
        self.db = db
        self.broker = broker
        self.geo = geo

    def warm(self) -> None:
        """Load the geo database and compile the UA regexes now, not on a visitor's request."""
        self.geo.warm()
        warm_agents()

    async def ingest(self, site: Site, beacon: Beacon, request: Request) -> IngestResult:
        result = IngestResult(rejected=beacon.rejected)
        if request.gpc or any(e.type == "optout" for e in beacon.events):
            if any(e.type == "optout" for e in beacon.events):
                await self._record_opt_out(site)
            result.honoured = "gpc"
            return result
        if request.dnt:
            result.honoured = "dnt"
            return result
        if site.consent_mode == "opt-in" and beacon.consent != "granted":
            result.honoured = "consent"
            return result
        agent = reduce(request.user_agent)
        if agent.bot:
            result.honoured = "bot"
            return result
        if not beacon.events or beacon.visit is None:
            return result
        for attempt in range(2):
            try:
                visit = await self._record(site, beacon, request, agent)
                break
            except IntegrityError:
                if attempt:  # the same new visit raced itself twice: give up on this beacon
                    raise
        result.accepted = len(beacon.events)
        if visit is not None:
            await self._publish_live(site, visit)
            result.invite = await self._take_invitation(beacon.visit)
        return result

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

    async def _take_invitation(self, visit_id: str) -> dict[str, str] | None:
        """The oldest undelivered, unexpired invitation for the visit, marked delivered."""
        async with self.db.session(Scope.system()) as s:
            invitation = await s.scalar(
                select(Invitation)
                .where(
                    Invitation.visit_id == visit_id,
                    Invitation.delivered_at.is_(None),
                    Invitation.created_at >= utcnow() - INVITATION_TTL,
                )
                .order_by(Invitation.id)
                .limit(1)
            )
            if invitation is None:
                return None
            invitation.delivered_at = utcnow()
            return {"text": invitation.text, "from": invitation.from_name}

    async def _record(
        self, site: Site, beacon: Beacon, request: Request, agent: Any
    ) -> dict[str, Any] | None:
        assert beacon.visit is not None
        async with self.db.session(Scope.system()) as s:
            visit = await s.get(Visit, beacon.visit)
            if visit is not None and visit.site_id != site.id:
                return None  # a visit id from another site is never joined to this one
            if visit is None:
                first = next((e for e in beacon.events if e.type == "pageview"), None)
                if first is None:
                    return None  # pings for a visit we never saw start: nothing to attach to
                visit = await self._start_visit(s, site, beacon, request, agent, first)
            page_seq = visit.pageviews
            for hit in beacon.events:
                if hit.type == "pageview":
                    page_seq += 1
                    path, _query = urls.clean_path(hit.url)
                    s.add(
                        PageView(
                            organisation_id=site.organisation_id,
                            site_id=site.id,
                            visit_id=visit.id,
                            seq=page_seq,
                            path=path,
                            title=(hit.title or "")[:200] or None,
                            at=hit.at,
                            seconds=0,
                        )
                    )
                elif hit.seq and hit.seq <= page_seq:
                    await s.execute(
                        update(PageView)
                        .where(
                            PageView.visit_id == visit.id,
                            PageView.seq == hit.seq,
                            PageView.seconds < hit.seconds,
                        )
                        .values(seconds=hit.seconds)
                    )
            visit.pageviews = page_seq
            visit.last_seen_at = max(visit.last_seen_at, *(h.at for h in beacon.events))
            visit.seconds = int((visit.last_seen_at - visit.started_at).total_seconds())
            await s.flush()
            return await _live_row(s, visit)

    async def _start_visit(
        self, s: Any, site: Site, beacon: Beacon, request: Request, agent: Any, first: Hit
    ) -> Visit:
        site_visitor = None
        if beacon.visitor is not None:
            site_visitor = await _find_or_create_visitor(s, site, beacon.visitor, first.at)
            site_visitor.visit_count += 1
            site_visitor.last_seen_at = first.at
        _path, query = urls.clean_path(first.url)
        referrer = urls.referrer_origin(first.referrer, _host_of(site, first.referrer))
        place = self.geo.locate(request.ip)
        visit = Visit(
            id=beacon.visit,
            organisation_id=site.organisation_id,
            site_id=site.id,
            site_visitor_id=site_visitor.id if site_visitor else None,
            started_at=first.at,
            last_seen_at=first.at,
            pageviews=0,
            seconds=0,
            is_returning=bool(site_visitor and site_visitor.visit_count > 1),
            country=place.country,
            region=place.region,
            city=place.city,
            browser=agent.browser,
            browser_major=agent.browser_major,
            os=agent.os,
            device=agent.device,
            referrer=referrer,
            channel=urls.channel(referrer, query),
            campaign=query,
        )
        s.add(visit)
        await s.flush()
        return visit

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

    async def _publish_live(self, site: Site, row: dict[str, Any]) -> None:
        frame = {"type": "visitor", "visitor": row}
        await self.broker.publish(Event((recipients.site_agents(site.id),), frame))

    async def live_visitors(self, scope: Scope, site_ids: frozenset[str]) -> list[dict[str, Any]]:
        """Visits on these sites with a beacon in the last two minutes, most recent first."""
        since = utcnow() - LIVE_WINDOW
        async with self.db.session(scope) as s:
            visits = (
                await s.scalars(
                    select(Visit)
                    .where(Visit.site_id.in_(site_ids), Visit.last_seen_at >= since)
                    .order_by(Visit.last_seen_at.desc())
                    .limit(500)
                )
            ).all()
            return [await _live_row(s, v) for v in visits]

    async def visit_detail(self, scope: Scope, visit_id: str) -> dict[str, Any]:
        """A visit's usage data and its navigation path (the chat panel's context)."""
        async with self.db.session(scope) as s:
            visit = await s.scalar(select(Visit).where(Visit.id == visit_id))
            if visit is None:
                raise NotFound("No such visit.")
            pages = (
                await s.scalars(
                    select(PageView).where(PageView.visit_id == visit_id).order_by(PageView.seq)
                )
            ).all()
            row = await _live_row(s, visit)
        row["path"] = [
            {"seq": p.seq, "path": p.path, "title": p.title, "at": _iso(p.at), "seconds": p.seconds}
            for p in pages
        ]
        return row

    async def link_conversation(self, site_id: str, visit_id: str, conversation_id: str) -> bool:
        """Attach a chat to the visit it started in; False if the visit is unknown on this site."""
        async with self.db.session(Scope.system()) as s:
            result = await s.execute(
                update(Visit)
                .where(Visit.id == visit_id, Visit.site_id == site_id)
                .values(conversation_id=conversation_id)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]


async def _find_or_create_visitor(s: Any, site: Site, cookie: str, at: datetime) -> SiteVisitor:
    """Find-or-create that survives races: two first beacons of one browser can arrive together;
    the unique cookie hash makes one insert fail, and the caller retries the whole beacon."""
    digest = secret_hash(f"{site.id}:{cookie}")
    visitor: SiteVisitor | None = await s.scalar(
        select(SiteVisitor).where(SiteVisitor.cookie_hash == digest)
    )
    if visitor is None:
        visitor = SiteVisitor(
            id=new_id(),
            organisation_id=site.organisation_id,
            site_id=site.id,
            cookie_hash=digest,
            first_seen_at=at,
            last_seen_at=at,
            visit_count=0,
        )
        s.add(visitor)
        await s.flush()
    return visitor


def _host_of(site: Site, referrer: str | None) -> str | None:
    """Internal navigations (a referrer on one of the site's own origins) are not referrals."""
    if not referrer:
        return None
    origin = urls.referrer_origin(referrer)
    if origin and origin in site.allowed_origins:
        return origin.split("://", 1)[1].split(":")[0]
    return None


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def _live_row(s: Any, visit: Visit) -> dict[str, Any]:
    last = (
        await s.execute(
            select(PageView.path, PageView.title, PageView.at)
            .where(PageView.visit_id == visit.id)
            .order_by(PageView.seq.desc())
            .limit(1)
        )
    ).first()
    label_source = visit.site_visitor_id or visit.id
    return {
        "id": visit.id,
        "site_id": visit.site_id,
        "label": "Visitor " + label_source[:4].upper().replace("-", "X").replace("_", "Y"),
        "page": {"path": last[0], "title": last[1]} if last else None,
        "pageviews": visit.pageviews,
        "started_at": _iso(visit.started_at),
        "last_seen_at": _iso(visit.last_seen_at),
        "seconds": int((visit.last_seen_at - visit.started_at).total_seconds()),
        "location": {"country": visit.country, "region": visit.region, "city": visit.city},
        "device": {
            "browser": visit.browser,
            "browser_major": visit.browser_major,
            "os": visit.os,
            "class": visit.device,
        },
        "referrer": visit.referrer,
        "channel": visit.channel,
        "returning": visit.is_returning,
        "conversation_id": visit.conversation_id,
    }
