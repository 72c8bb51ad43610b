"""Daily roll-ups of visits and page views, and the reports that read them.

Why roll up: a 90-day report over millions of raw events must not scan them. ``rollup`` turns a
day's raw visits and page views into a few hundred ``daily_stats`` rows per site (a total plus
one row per page, channel, country, device and browser); reports sum those rows. Unique visitors
over a range are summed from daily uniques (a browser seen on two days counts twice), which
reports label "daily unique visitors".
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import case, delete, distinct, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from confide.chat.models import Conversation
from confide.sites.models import Site
from confide.storage.engine import Database
from confide.storage.scope import Scope
from confide.tracking.models import AnonymousCount, DailyStat, PageView, Visit

DIMENSIONS = ("channel", "country", "device", "browser")
TOP = 10
MAX_RANGE_DAYS = 366


def _lock_key(site_id: str, day: date) -> int:
    """A signed 64-bit key for ``pg_advisory_xact_lock``, the same in every process (unlike
    ``hash()``): the first 8 bytes of a BLAKE2b digest of the site-day."""
    digest = hashlib.blake2b(f"daily_stats:{site_id}:{day.isoformat()}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def _bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, UTC)
    return start, start + timedelta(days=1)


class Reports:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def rollup(self, days: list[date]) -> int:
        """Recompute ``daily_stats`` for these days (idempotent: safe to rerun or interrupt).

        Per site and day: the raw data is aggregated in a read transaction (on SQLite's WAL it
        never blocks the chat's writes), then one short write replaces that site-day's rows.
        Scanning inside the write transaction held the database's write lock for the whole scan
        and stalled every chat message behind it.

        Roll-ups may overlap (the background task on each node, ``confide stats rollup``). On
        PostgreSQL (READ COMMITTED) two overlapping writes of one site-day would both DELETE,
        then both INSERT, and one would fail on the unique key; so the write transaction first
        takes an advisory lock on (site, day): the second waits, then its DELETE sees the first
        one's rows and replaces them (with figures read a moment earlier, at worst; the next
        roll-up, a minute later, catches up). SQLite writes are serialised already.
        """
        async with self.db.session(Scope.system(), read_only=True) as s:
            sites = list((await s.execute(select(Site.organisation_id, Site.id))).all())
        rows = 0
        for day in days:
            for organisation_id, site_id in sites:
                async with self.db.session(Scope.system(), read_only=True) as s:
                    values = await _aggregate_day(s, organisation_id, site_id, day)
                async with self.db.session(Scope.system()) as s:
                    if not self.db.is_sqlite:
                        await s.execute(select(func.pg_advisory_xact_lock(_lock_key(site_id, day))))
                    await s.execute(
                        delete(DailyStat).where(DailyStat.site_id == site_id, DailyStat.day == day)
                    )
                    if values:
                        await s.execute(insert(DailyStat), values)
                rows += len(values)
        return rows

    async def site_report(
        self,
        scope: Scope,
        site: Site,
        start: date | None,
        end: date | None,
        *,
        top: int | None = TOP,
    ) -> dict[str, Any]:
        """Totals by day and breakdowns: the ``top`` rows of each (the page's charts), or every
        row (``top=None``: the CSV export, which must not stop at ten)."""
        end = end or datetime.now(UTC).date()
        start = start or end - timedelta(days=29)
        if start > end:
            start, end = end, start
        start = max(start, end - timedelta(days=MAX_RANGE_DAYS - 1))
        async with self.db.session(scope) as s:
            base = select(DailyStat).where(
                DailyStat.site_id == site.id, DailyStat.day >= start, DailyStat.day <= end
            )
            series_rows = (
                await s.scalars(base.where(DailyStat.dimension == "total").order_by(DailyStat.day))
            ).all()
            breakdowns = {
                dim: await _top(s, site.id, dim, start, end, top) for dim in ("page", *DIMENSIONS)
            }
            anonymous = await _anonymous_by_day(s, site.id, start, end)
            chats_by_day = await _chats_by_day(s, site.id, start, end)
        by_day = {r.day: r for r in series_rows}
        series: list[dict[str, Any]] = []
        for offset in range((end - start).days + 1):
            day = start + timedelta(days=offset)
            r = by_day.get(day)
            series.append(
                {
                    "day": day.isoformat(),
                    "visits": r.visits if r else 0,
                    "visitors": r.visitors if r else 0,
                    "pageviews": r.pageviews if r else 0,
                    "chats": chats_by_day.get(day, 0),
                    "visits_with_chat": r.chats if r else 0,
                    "anonymous_pageviews": anonymous.get(day, 0),
                }
            )
        visits = sum(int(x["visits"]) for x in series)
        seconds = sum(r.seconds for r in series_rows)
        with_chat = sum(int(x["visits_with_chat"]) for x in series)
        return {
            "site": {"id": site.id, "name": site.name},
            "from": start.isoformat(),
            "to": end.isoformat(),
            "totals": {
                "visits": visits,
                "visitors": sum(int(x["visitors"]) for x in series),
                "pageviews": sum(int(x["pageviews"]) for x in series),
                "average_visit_seconds": round(seconds / visits) if visits else 0,
                # Every chat on the site, whether or not its visitor allowed visit statistics
                # (what the History page lists), and the share of recorded visits with one.
                "chats": sum(chats_by_day.values()),
                "visits_with_chat": with_chat,
                "chat_share": round(with_chat / visits, 4) if visits else 0.0,
                # Counted under the UK statistics exception before consent (R12): page views
                # with no visit or visitor behind them, so kept apart from the figures above.
                "anonymous_pageviews": sum(anonymous.values()),
            },
            "series": series,
            "breakdowns": breakdowns,
        }


async def _anonymous_by_day(
    s: AsyncSession, site_id: str, start: date, end: date
) -> dict[date, int]:
    rows = await s.execute(
        select(AnonymousCount.day, func.sum(AnonymousCount.pageviews))
        .where(
            AnonymousCount.site_id == site_id,
            AnonymousCount.day >= start,
            AnonymousCount.day <= end,
        )
        .group_by(AnonymousCount.day)
    )
    return {r[0]: int(r[1] or 0) for r in rows}


async def _chats_by_day(s: AsyncSession, site_id: str, start: date, end: date) -> dict[date, int]:
    """Chats started per day (UTC), from the conversations themselves: a chat with a visitor who
    refused statistics has no visit, yet it is a chat the dealer had. Offline enquiries are not
    chats. Counted in Python: a site has a few thousand chats a year, and day arithmetic in SQL
    differs between SQLite and PostgreSQL."""
    lo, _ = _bounds(start)
    _, hi = _bounds(end)
    rows = await s.scalars(
        select(Conversation.created_at).where(
            Conversation.site_id == site_id,
            Conversation.source == "chat",
            Conversation.created_at >= lo,
            Conversation.created_at < hi,
        )
    )
    out: dict[date, int] = {}
    for at in rows:
        day = at.astimezone(UTC).date()
        out[day] = out.get(day, 0) + 1
    return out


async def _top(
    s: AsyncSession, site_id: str, dim: str, start: date, end: date, top: int | None
) -> list[dict[str, Any]]:
    query = (
        select(
            DailyStat.key,
            func.sum(DailyStat.visits),
            func.sum(DailyStat.pageviews),
            func.sum(DailyStat.chats),
            func.sum(DailyStat.seconds),
        )
        .where(
            DailyStat.site_id == site_id,
            DailyStat.dimension == dim,
            DailyStat.day >= start,
            DailyStat.day <= end,
        )
        .group_by(DailyStat.key)
        .order_by(
            func.sum(DailyStat.pageviews if dim == "page" else DailyStat.visits).desc(),
            DailyStat.key,
        )
    )
    rows = await s.execute(query if top is None else query.limit(top))
    return [
        {
            "key": r[0],
            "visits": int(r[1] or 0),
            "pageviews": int(r[2] or 0),
            "chats": int(r[3] or 0),
            "seconds": int(r[4] or 0),
        }
        for r in rows
    ]


async def _aggregate_day(
    s: AsyncSession, organisation_id: str, site_id: str, day: date
) -> list[dict[str, Any]]:
    """One site's ``daily_stats`` rows for one day, computed by a read (no write lock held)."""
    lo, hi = _bounds(day)
    in_day = (Visit.site_id == site_id, Visit.started_at >= lo, Visit.started_at < hi)
    chats = func.sum(case((Visit.conversation_id.is_not(None), 1), else_=0))
    visitors = func.count(distinct(func.coalesce(Visit.site_visitor_id, Visit.id)))
    measures = (func.count(), visitors, func.sum(Visit.pageviews), func.sum(Visit.seconds), chats)
    out: list[dict[str, Any]] = []

    def add(dimension: str, rows: Any) -> None:
        for key, n, uniq, pageviews, seconds, chat_count in rows:
            out.append(
                {
                    "organisation_id": organisation_id,
                    "site_id": site_id,
                    "day": day,
                    "dimension": dimension,
                    "key": str(key)[:512],
                    "visits": int(n or 0),
                    "visitors": int(uniq or 0),
                    "pageviews": int(pageviews or 0),
                    "seconds": int(seconds or 0),
                    "chats": int(chat_count or 0),
                }
            )

    total = (await s.execute(select(literal(""), *measures).where(*in_day))).all()
    if not total or not total[0][1]:
        return []
    add("total", total)
    for dim in DIMENSIONS:
        key = func.coalesce(getattr(Visit, dim), "unknown")
        add(dim, (await s.execute(select(key, *measures).where(*in_day).group_by(key))).all())
    distinct_visits = func.count(distinct(PageView.visit_id))
    # A page's chats: the visits that viewed it and had a chat (which pages lead to a chat).
    with_chat = func.count(
        distinct(case((Visit.conversation_id.is_not(None), PageView.visit_id), else_=None))
    )
    pages = (
        select(
            PageView.path,
            distinct_visits,
            distinct_visits,
            func.count(),
            func.sum(PageView.seconds),
            with_chat,
        )
        .join(Visit, Visit.id == PageView.visit_id)
        .where(PageView.site_id == site_id, PageView.at >= lo, PageView.at < hi)
        .group_by(PageView.path)
    )
    add("page", (await s.execute(pages)).all())
    return out
