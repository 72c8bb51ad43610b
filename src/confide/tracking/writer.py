"""Group commit for beacons: every request's events are written in shared transactions.

Why: SQLite has one writer at a time, and a transaction per beacon spends its time waiting for
the write lock (a few hundred beacons per second). One writer task per process drains the queue
and writes a batch with a handful of multi-row statements; each request gets its answer (and any
invitation waiting for its visit) after the commit, so an accepted event is a stored event.

Times are the server's receive time: a visitor's clock may be minutes off, and the live list and
invitations compare against our clock. (Beacon timestamps are still checked: none from the
future, none older than a day.)

Per batch, in one transaction: the visits already known (locked ``FOR UPDATE`` on PostgreSQL,
so page-view numbers stay unique across nodes), new site visitors and visits, page-view counters,
page views, time-on-page updates, and invitations handed over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from confide.clock import utcnow
from confide.ids import new_id, secret_hash
from confide.sites.models import Site
from confide.storage.engine import Database
from confide.tracking import urls
from confide.tracking.events import Beacon
from confide.tracking.models import Invitation, PageView, SiteVisitor, Visit

log = logging.getLogger(__name__)

_visits: Table = Visit.__table__  # type: ignore[assignment]
_pages: Table = PageView.__table__  # type: ignore[assignment]
_visitors: Table = SiteVisitor.__table__  # type: ignore[assignment]
_invites: Table = Invitation.__table__  # type: ignore[assignment]
INVITATION_TTL = timedelta(minutes=5)


@dataclass(frozen=True)
class Usage:
    """What a new visit records about the browser: reduced before it gets here."""

    country: str | None
    region: str | None
    city: str | None
    browser: str | None
    browser_major: str | None
    os: str | None
    device: str | None


@dataclass(slots=True)
class Pending:
    site: Site
    beacon: Beacon
    usage: Usage
    future: asyncio.Future[tuple[dict[str, Any] | None, dict[str, str] | None]] = field(repr=False)


class TrackingWriter:
    def __init__(self, db: Database, *, max_batch: int = 500) -> None:
        self._db = db
        self._max_batch = max_batch
        self._queue: list[Pending] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="confide-tracking-writer")

    async def stop(self) -> None:
        if self._task is None:
            return
        while self._queue:
            await self._flush()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def submit(self, pending: Pending) -> tuple[dict[str, Any] | None, dict[str, str] | None]:
        if self._task is None:
            raise RuntimeError("the tracking writer is not running")
        self._queue.append(pending)
        self._wake.set()
        return await pending.future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                await self._flush()

    async def _flush(self) -> None:
        batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
        try:
            async with self._db.write_connection() as conn:
                results = await _write(conn, batch, self._db.is_sqlite)
        except Exception as exc:
            log.exception("beacon batch failed (%d beacons); nothing was stored", len(batch))
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        for p, result in zip(batch, results, strict=True):
            if not p.future.done():
                p.future.set_result(result)


async def _write(
    conn: AsyncConnection, batch: list[Pending], sqlite: bool
) -> list[tuple[dict[str, Any] | None, dict[str, str] | None]]:
    now = utcnow()
    ids = list({p.beacon.visit for p in batch if p.beacon.visit})
    query = select(_visits).where(_visits.c.id.in_(ids))
    if not sqlite:
        query = query.with_for_update()
    visits: dict[str, dict[str, Any]] = {r.id: dict(r._mapping) for r in await conn.execute(query)}
    await _create_visits(conn, batch, visits, now)
    pages: list[dict[str, Any]] = []
    pings: list[dict[str, Any]] = []
    touched: dict[str, dict[str, Any]] = {}
    accepted: list[bool] = []
    for p in batch:
        visit = visits.get(p.beacon.visit or "")
        ok = visit is not None and visit["site_id"] == p.site.id
        accepted.append(ok)
        if not ok or visit is None:
            continue
        for hit in p.beacon.events:
            if hit.type == "pageview":
                visit["pageviews"] += 1
                path, _query = urls.clean_path(hit.url)
                title = (hit.title or "")[:200] or None
                pages.append(
                    {
                        "organisation_id": p.site.organisation_id,
                        "site_id": p.site.id,
                        "visit_id": visit["id"],
                        "seq": visit["pageviews"],
                        "path": path,
                        "title": title,
                        "at": now,
                        "seconds": 0,
                    }
                )
                visit["last_path"], visit["last_title"] = path, title
            elif 0 < hit.seq <= visit["pageviews"]:
                pings.append({"v": visit["id"], "q": hit.seq, "s": hit.seconds})
            visit["last_seen_at"] = max(visit["last_seen_at"], now)
        # Visit length on the visitor's own clock (offsets cancel out), never less than ours.
        client_span = max(h.at for h in p.beacon.events) - visit["first_ts"]
        server_span = visit["last_seen_at"] - visit["started_at"]
        visit["seconds"] = max(visit["seconds"], int(max(client_span, server_span).total_seconds()))
        touched[visit["id"]] = visit
    if touched:
        await conn.execute(
            update(_visits)
            .where(_visits.c.id == bindparam("b_id"))
            .values(
                pageviews=bindparam("b_pageviews"),
                last_seen_at=bindparam("b_last_seen_at"),
                seconds=bindparam("b_seconds"),
                last_path=bindparam("b_last_path"),
                last_title=bindparam("b_last_title"),
            ),
            [
                {
                    "b_id": v["id"],
                    "b_pageviews": v["pageviews"],
                    "b_last_seen_at": v["last_seen_at"],
                    "b_seconds": v["seconds"],
                    "b_last_path": v["last_path"],
                    "b_last_title": v["last_title"],
                }
                for v in touched.values()
            ],
        )
    if pages:
        await conn.execute(insert(_pages), pages)
    if pings:
        await conn.execute(
            update(_pages)
            .where(
                _pages.c.visit_id == bindparam("v"),
                _pages.c.seq == bindparam("q"),
                _pages.c.seconds < bindparam("s"),
            )
            .values(seconds=bindparam("s")),
            pings,
        )
    invites = await _take_invitations(conn, list(touched), now)
    return [
        (visits[p.beacon.visit or ""], invites.pop(p.beacon.visit or "", None))
        if ok
        else (None, None)
        for p, ok in zip(batch, accepted, strict=True)
    ]


async def _create_visits(
    conn: AsyncConnection, batch: list[Pending], visits: dict[str, dict[str, Any]], now: datetime
) -> None:
    """Visits seen for the first time (their first beacon must start with a page view)."""
    starts: dict[str, Pending] = {}
    for p in batch:
        visit_id = p.beacon.visit
        new = visit_id and visit_id not in visits and visit_id not in starts
        if new and any(e.type == "pageview" for e in p.beacon.events):
            starts[str(visit_id)] = p
    if not starts:
        return
    # One browser may start several visits in one batch (two tabs: one cookie, but a visit id
    # per tab, as sessionStorage is per tab), so visitors are keyed by cookie hash while the
    # visit count goes up once per new visit.
    digests = {
        visit_id: secret_hash(f"{p.site.id}:{p.beacon.visitor}")
        for visit_id, p in starts.items()
        if p.beacon.visitor
    }
    known = (
        {
            r.cookie_hash: dict(r._mapping)
            for r in await conn.execute(
                select(_visitors).where(_visitors.c.cookie_hash.in_(set(digests.values())))
            )
        }
        if digests
        else {}
    )
    fresh: dict[str, dict[str, Any]] = {}  # visitor id -> row, new in this batch
    bumps: dict[str, int] = {}  # visitor id -> new visits in this batch
    returning: dict[str, bool] = {}  # visit id -> the browser was seen before this visit
    for visit_id, digest in digests.items():
        p = starts[visit_id]
        row = known.get(digest)
        if row is None:
            row = {
                "id": new_id(),
                "organisation_id": p.site.organisation_id,
                "site_id": p.site.id,
                "cookie_hash": digest,
                "first_seen_at": now,
                "last_seen_at": now,
                "visit_count": 1,
            }
            fresh[row["id"]] = row  # inserted below, with the count reached by then
            known[digest] = row
        else:
            row["visit_count"] += 1
            if row["id"] not in fresh:
                bumps[row["id"]] = bumps.get(row["id"], 0) + 1
        returning[visit_id] = row["visit_count"] > 1
    if fresh:
        await conn.execute(insert(_visitors), list(fresh.values()))
    if bumps:
        # An increment, not the count read above: another node may have counted a visit too.
        await conn.execute(
            update(_visitors)
            .where(_visitors.c.id == bindparam("b_id"))
            .values(
                visit_count=_visitors.c.visit_count + bindparam("b_n"),
                last_seen_at=bindparam("b_seen"),
            ),
            [{"b_id": vid, "b_n": n, "b_seen": now} for vid, n in bumps.items()],
        )
    rows = []
    for visit_id, p in starts.items():
        first = next(e for e in p.beacon.events if e.type == "pageview")
        visitor = known.get(digests[visit_id]) if visit_id in digests else None
        _path, query = urls.clean_path(first.url)
        referrer = urls.referrer_origin(first.referrer, _own_host(p.site, first.referrer))
        u = p.usage
        row = {
            "id": visit_id,
            "organisation_id": p.site.organisation_id,
            "site_id": p.site.id,
            "site_visitor_id": visitor["id"] if visitor else None,
            "started_at": now,
            "first_ts": first.at,
            "last_seen_at": now,
            "pageviews": 0,
            "seconds": 0,
            "is_returning": returning.get(visit_id, False),
            "country": u.country,
            "region": u.region,
            "city": u.city,
            "browser": u.browser,
            "browser_major": u.browser_major,
            "os": u.os,
            "device": u.device,
            "referrer": referrer,
            "channel": urls.channel(referrer, query),
            "campaign": query,
            "conversation_id": None,
            "last_path": None,
            "last_title": None,
        }
        rows.append(row)
        visits[visit_id] = dict(row)
    await conn.execute(insert(_visits), rows)


async def _take_invitations(
    conn: AsyncConnection, visit_ids: list[str], now: datetime
) -> dict[str, dict[str, str]]:
    if not visit_ids:
        return {}
    rows = (
        await conn.execute(
            select(_invites.c.id, _invites.c.visit_id, _invites.c.text, _invites.c.from_name)
            .where(
                _invites.c.visit_id.in_(visit_ids),
                _invites.c.delivered_at.is_(None),
                _invites.c.created_at >= now - INVITATION_TTL,
            )
            .order_by(_invites.c.id)
        )
    ).all()
    taken: dict[str, dict[str, str]] = {}
    ids = []
    for row in rows:
        if row.visit_id not in taken:
            taken[row.visit_id] = {"text": row.text, "from": row.from_name}
            ids.append(row.id)
    if ids:
        await conn.execute(update(_invites).where(_invites.c.id.in_(ids)).values(delivered_at=now))
    return taken


def _own_host(site: Site, referrer: str | None) -> str | None:
    """Internal navigations (a referrer on one of the site's own origins) are not referrals."""
    origin = urls.referrer_origin(referrer) if referrer else None
    if origin and origin in site.allowed_origins:
        return origin.split("://", 1)[1].split(":")[0]
    return None
