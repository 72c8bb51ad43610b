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

What a batch does is written once, as :func:`plan`: a generator that yields each statement it
needs as an :data:`~confide.tracking.sqlite_ingest.Op` and gets its result back. Two drivers
run it: on SQLite (a file) :class:`~confide.tracking.sqlite_ingest.SqliteIngest` runs the whole
plan and its commit as one call on a writer thread with the standard library's sqlite3 (the
per-statement cost of SQLAlchemy on aiosqlite was most of the server's CPU per beacon); on
PostgreSQL (and in-memory SQLite) :func:`_drive` runs it through SQLAlchemy Core.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from confide.clock import utcnow
from confide.ids import new_id, secret_hash
from confide.sites.models import Site
from confide.storage.busy_window import BusyWindow
from confide.storage.engine import Database
from confide.tracking import urls
from confide.tracking.events import Beacon
from confide.tracking.models import Invitation, PageView, SiteVisitor, Visit
from confide.tracking.sqlite_ingest import Op, SqliteIngest

log = logging.getLogger(__name__)

_visits: Table = Visit.__table__  # type: ignore[assignment]
_pages: Table = PageView.__table__  # type: ignore[assignment]
_visitors: Table = SiteVisitor.__table__  # type: ignore[assignment]
_invites: Table = Invitation.__table__  # type: ignore[assignment]
INVITATION_TTL = timedelta(minutes=5)

#: Per beacon: the visit as stored after the batch (None: refused) and an invitation, if any.
Result = tuple[dict[str, Any] | None, dict[str, str] | None]
Plan = Generator[Op, Any, list[Result]]


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
    #: What a new visit records. A callable is called only when this beacon starts a visit:
    #: most beacons belong to a visit already (pings, later pages), and locating the address
    #: costs more than the rest of a beacon's parsing.
    usage: Usage | Callable[[], Usage]
    future: asyncio.Future[Result] = field(repr=False)
    #: A cookieless site's visitor key (R21, ``tracking/cookieless.py``), stored where a
    #: cookie's hash goes; None: the visitor is the beacon's cookie, if any.
    visitor_key: str | None = None


class TrackingWriter:
    """``sqlite3_thread=False`` keeps SQLAlchemy even on a SQLite file (the tests compare the
    two drivers on the same batches)."""

    def __init__(
        self,
        db: Database,
        *,
        max_batch: int = 500,
        sqlite3_thread: bool = True,
        busy_window_ms: float = 0.0,
        inline: bool | None = None,
    ) -> None:
        self._db = db
        self._max_batch = max_batch
        self._busy = BusyWindow(busy_window_ms)
        self._queue: list[Pending] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        path = db.sqlite_file if sqlite3_thread else None
        #: On SQLite (a file), a batch is one call on a sqlite3 writer thread (sqlite_ingest.py).
        self._sqlite = SqliteIngest(path, inline=inline) if path else None

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
        if self._sqlite is not None:
            await self._sqlite.close()

    async def submit(self, pending: Pending) -> Result:
        if self._task is None:
            raise RuntimeError("the tracking writer is not running")
        self._queue.append(pending)
        self._wake.set()
        return await pending.future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if len(self._queue) < self._max_batch:
                await self._busy.gather()
            self._wake.clear()
            while self._queue:
                await self._flush()
                self._busy.committed()

    async def _flush(self) -> None:
        batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
        now = utcnow()
        try:
            if self._sqlite is not None:
                results = await self._sqlite.run(lambda: plan(batch, now))
            else:
                async with self._db.write_connection() as conn:
                    results = await _drive(conn, plan(batch, now), sqlite=self._db.is_sqlite)
        except Exception as exc:
            log.exception("beacon batch failed (%d beacons); nothing was stored", len(batch))
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        for p, result in zip(batch, results, strict=True):
            if not p.future.done():
                p.future.set_result(result)


# --- the batch, once for both drivers -----------------------------------------------------------
#
# Operations (what the plan yields -> what it gets back); datetimes are aware UTC ``datetime``s
# on both sides, the drivers convert:
#   ("visits", [visit id])                       -> {visit id: row dict} (FOR UPDATE on PostgreSQL)
#   ("visitors", {cookie hash})                  -> [{"id", "cookie_hash", "visit_count"}]
#   ("insert_visitors", [row]), ("insert_visits", [row]), ("insert_pages", [row]) -> None
#   ("bump_visitors", [{"b_id", "b_n", "b_seen"}]) -> None (an increment, not a set)
#   ("touch_visits", [{"b_id", "b_pageviews", "b_last_seen_at", "b_seconds", "b_last_path",
#                      "b_last_title"}])          -> None
#   ("pings", [{"v", "q", "s"}])                  -> None (raises a page's seconds, never lowers)
#   ("invitations", ([visit id], created since)) -> [(id, visit_id, text, from_name)] by id
#   ("deliver_invitations", ([id], now))         -> None


def plan(batch: list[Pending], now: datetime) -> Plan:
    """Everything one batch writes, in one transaction; the answer for each beacon, in order."""
    ids = list({p.beacon.visit for p in batch if p.beacon.visit})
    visits: dict[str, dict[str, Any]] = yield ("visits", ids)
    yield from _create_visits(batch, visits, now)
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
                title = urls.clean_title(hit.title)
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
        yield (
            "touch_visits",
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
        yield ("insert_pages", pages)
    if pings:
        yield ("pings", pings)
    invites = (yield from _take_invitations(list(touched), now)) if touched else {}
    return [
        (visits[p.beacon.visit or ""], invites.pop(p.beacon.visit or "", None))
        if ok
        else (None, None)
        for p, ok in zip(batch, accepted, strict=True)
    ]


def _create_visits(
    batch: list[Pending], visits: dict[str, dict[str, Any]], now: datetime
) -> Generator[Op, Any, None]:
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
        visit_id: p.visitor_key or secret_hash(f"{p.site.id}:{p.beacon.visitor}")
        for visit_id, p in starts.items()
        if p.visitor_key or p.beacon.visitor
    }
    known: dict[str, dict[str, Any]] = {}
    if digests:
        for row in (yield ("visitors", set(digests.values()))):
            known[row["cookie_hash"]] = row
    fresh: dict[str, dict[str, Any]] = {}  # visitor id -> row, new in this batch
    bumps: dict[str, int] = {}  # visitor id -> new visits in this batch
    returning: dict[str, bool] = {}  # visit id -> the browser was seen before this visit
    for visit_id, digest in digests.items():
        p = starts[visit_id]
        visitor = known.get(digest)
        if visitor is None:
            visitor = {
                "id": new_id(),
                "organisation_id": p.site.organisation_id,
                "site_id": p.site.id,
                "cookie_hash": digest,
                "first_seen_at": now,
                "last_seen_at": now,
                "visit_count": 1,
            }
            fresh[visitor["id"]] = visitor  # inserted below, with the count reached by then
            known[digest] = visitor
        else:
            visitor["visit_count"] += 1
            if visitor["id"] not in fresh:
                bumps[visitor["id"]] = bumps.get(visitor["id"], 0) + 1
        returning[visit_id] = visitor["visit_count"] > 1
    if fresh:
        yield ("insert_visitors", list(fresh.values()))
    if bumps:
        # An increment, not the count read above: another node may have counted a visit too.
        yield ("bump_visitors", [{"b_id": v, "b_n": n, "b_seen": now} for v, n in bumps.items()])
    rows = []
    for visit_id, p in starts.items():
        first = next(e for e in p.beacon.events if e.type == "pageview")
        visitor = known.get(digests[visit_id]) if visit_id in digests else None
        _path, query = urls.clean_path(first.url)
        referrer = urls.referrer_origin(first.referrer, _own_host(p.site, first.referrer))
        u = p.usage if isinstance(p.usage, Usage) else p.usage()
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
    yield ("insert_visits", rows)


def _take_invitations(
    visit_ids: list[str], now: datetime
) -> Generator[Op, Any, dict[str, dict[str, str]]]:
    """The oldest undelivered invitation per visit (younger than INVITATION_TTL), marked
    delivered: each is handed over once."""
    rows = yield ("invitations", (visit_ids, now - INVITATION_TTL))
    taken: dict[str, dict[str, str]] = {}
    ids = []
    for invite_id, visit_id, text, from_name in rows:
        if visit_id not in taken:
            taken[visit_id] = {"text": text, "from": from_name}
            ids.append(invite_id)
    if ids:
        yield ("deliver_invitations", (ids, now))
    return taken


def _own_host(site: Site, referrer: str | None) -> str | None:
    """Internal navigations (a referrer on one of the site's own origins) are not referrals."""
    origin = urls.referrer_origin(referrer) if referrer else None
    if origin and origin in site.allowed_origins:
        return origin.split("://", 1)[1].split(":")[0]
    return None


# --- the SQLAlchemy driver (PostgreSQL; in-memory SQLite) ---------------------------------------


async def _drive(conn: AsyncConnection, batch: Plan, *, sqlite: bool) -> list[Result]:
    result: Any = None
    while True:
        try:
            name, arg = batch.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        result = await _OPS[name](conn, arg, sqlite)


async def _visits_by_id(
    conn: AsyncConnection, ids: list[str], sqlite: bool
) -> dict[str, dict[str, Any]]:
    query = select(_visits).where(_visits.c.id.in_(ids))
    if not sqlite:
        query = query.with_for_update()
    return {r.id: dict(r._mapping) for r in await conn.execute(query)}


async def _visitors_by_hash(
    conn: AsyncConnection, digests: set[str], _sqlite: bool
) -> list[dict[str, Any]]:
    query = select(_visitors.c.id, _visitors.c.cookie_hash, _visitors.c.visit_count).where(
        _visitors.c.cookie_hash.in_(digests)
    )
    return [dict(r._mapping) for r in await conn.execute(query)]


def _insert(table: Table) -> Any:
    async def run(conn: AsyncConnection, rows: list[dict[str, Any]], _sqlite: bool) -> None:
        await conn.execute(insert(table), rows)

    return run


def _executemany(statement: Any) -> Any:
    async def run(conn: AsyncConnection, rows: list[dict[str, Any]], _sqlite: bool) -> None:
        await conn.execute(statement, rows)

    return run


async def _invitations(
    conn: AsyncConnection, arg: tuple[list[str], datetime], _sqlite: bool
) -> list[tuple[Any, ...]]:
    visit_ids, since = arg
    rows = await conn.execute(
        select(_invites.c.id, _invites.c.visit_id, _invites.c.text, _invites.c.from_name)
        .where(
            _invites.c.visit_id.in_(visit_ids),
            _invites.c.delivered_at.is_(None),
            _invites.c.created_at >= since,
        )
        .order_by(_invites.c.id)
    )
    return [tuple(r) for r in rows]


async def _deliver_invitations(
    conn: AsyncConnection, arg: tuple[list[int], datetime], _sqlite: bool
) -> None:
    ids, now = arg
    await conn.execute(update(_invites).where(_invites.c.id.in_(ids)).values(delivered_at=now))


_OPS: dict[str, Any] = {
    "visits": _visits_by_id,
    "visitors": _visitors_by_hash,
    "insert_visitors": _insert(_visitors),
    "insert_visits": _insert(_visits),
    "insert_pages": _insert(_pages),
    "bump_visitors": _executemany(
        update(_visitors)
        .where(_visitors.c.id == bindparam("b_id"))
        .values(
            visit_count=_visitors.c.visit_count + bindparam("b_n"),
            last_seen_at=bindparam("b_seen"),
        )
    ),
    "touch_visits": _executemany(
        update(_visits)
        .where(_visits.c.id == bindparam("b_id"))
        .values(
            pageviews=bindparam("b_pageviews"),
            last_seen_at=bindparam("b_last_seen_at"),
            seconds=bindparam("b_seconds"),
            last_path=bindparam("b_last_path"),
            last_title=bindparam("b_last_title"),
        )
    ),
    "pings": _executemany(
        update(_pages)
        .where(
            _pages.c.visit_id == bindparam("v"),
            _pages.c.seq == bindparam("q"),
            _pages.c.seconds < bindparam("s"),
        )
        .values(seconds=bindparam("s"))
    ),
    "invitations": _invitations,
    "deliver_invitations": _deliver_invitations,
}
