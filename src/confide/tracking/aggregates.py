"""Daily roll-ups of visits and page views, and the reports that read them.

Why roll up: a 90-day report over millions of raw events must not scan them. ``rollup`` turns a
day's raw visits and page views into a few hundred ``daily_stats`` rows per site (a total plus
one row per page, channel, country, device and browser); reports sum those rows. Unique visitors
over a range are summed from daily uniques (a browser seen on two days counts twice), which
reports label "daily unique visitors".
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import case, delete, distinct, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from confide.sites.models import Site
from confide.storage.engine import Database
from confide.storage.scope import Scope
from confide.tracking.models import DailyStat, PageView, Visit

DIMENSIONS = ("channel", "country", "device", "browser")
TOP = 10
MAX_RANGE_DAYS = 366


def _bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, UTC)
    return start, start + timedelta(days=1)


class Reports:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def rollup(self, days: list[date]) -> int:
        """Recompute ``daily_stats`` for these days (idempotent: safe to rerun or interrupt)."""
        rows = 0
        for day in days:
            async with self.db.session(Scope.system()) as s:
                await s.execute(delete(DailyStat).where(DailyStat.day == day))
                rows += await _rollup_day(s, day)
        return rows

    async def site_report(
        self, scope: Scope, site: Site, start: date | None, end: date | None
    ) -> dict[str, Any]:
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
                dim: await _top(s, site.id, dim, start, end) for dim in ("page", *DIMENSIONS)
            }
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
                    "chats": r.chats if r else 0,
                }
            )
        visits = sum(int(x["visits"]) for x in series)
        seconds = sum(r.seconds for r in series_rows)
        chats = sum(int(x["chats"]) for x in series)
        return {
            "site": {"id": site.id, "name": site.name},
            "from": start.isoformat(),
            "to": end.isoformat(),
            "totals": {
                "visits": visits,
                "visitors": sum(int(x["visitors"]) for x in series),
                "pageviews": sum(int(x["pageviews"]) for x in series),
                "average_visit_seconds": round(seconds / visits) if visits else 0,
                "chats": chats,
                "chat_share": round(chats / visits, 4) if visits else 0.0,
            },
            "series": series,
            "breakdowns": breakdowns,
        }


async def _top(
    s: AsyncSession, site_id: str, dim: str, start: date, end: date
) -> list[dict[str, Any]]:
    rows = await s.execute(
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
        .limit(TOP)
    )
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


async def _rollup_day(s: AsyncSession, day: date) -> int:
    lo, hi = _bounds(day)
    in_day = (Visit.started_at >= lo, Visit.started_at < hi)
    chats = func.sum(case((Visit.conversation_id.is_not(None), 1), else_=0))
    visitors = func.count(distinct(func.coalesce(Visit.site_visitor_id, Visit.id)))
    cols = [
        "organisation_id",
        "site_id",
        "day",
        "dimension",
        "key",
        "visits",
        "visitors",
        "pageviews",
        "seconds",
        "chats",
    ]
    count = 0
    total = (
        select(
            Visit.organisation_id,
            Visit.site_id,
            literal(day),
            literal("total"),
            literal(""),
            func.count(),
            visitors,
            func.sum(Visit.pageviews),
            func.sum(Visit.seconds),
            chats,
        )
        .where(*in_day)
        .group_by(Visit.organisation_id, Visit.site_id)
    )
    count += (await s.execute(insert(DailyStat).from_select(cols, total))).rowcount or 0  # type: ignore[attr-defined]
    for dim in DIMENSIONS:
        key = func.coalesce(getattr(Visit, dim), "unknown")
        stmt = (
            select(
                Visit.organisation_id,
                Visit.site_id,
                literal(day),
                literal(dim),
                key,
                func.count(),
                visitors,
                func.sum(Visit.pageviews),
                func.sum(Visit.seconds),
                chats,
            )
            .where(*in_day)
            .group_by(Visit.organisation_id, Visit.site_id, key)
        )
        count += (await s.execute(insert(DailyStat).from_select(cols, stmt))).rowcount or 0  # type: ignore[attr-defined]
    page_lo, page_hi = PageView.at >= lo, PageView.at < hi
    pages = (
        select(
            PageView.organisation_id,
            PageView.site_id,
            literal(day),
            literal("page"),
            PageView.path,
            func.count(distinct(PageView.visit_id)),
            func.count(distinct(PageView.visit_id)),
            func.count(),
            func.sum(PageView.seconds),
            literal(0),
        )
        .where(page_lo, page_hi)
        .group_by(PageView.organisation_id, PageView.site_id, PageView.path)
    )
    count += (await s.execute(insert(DailyStat).from_select(cols, pages))).rowcount or 0  # type: ignore[attr-defined]
    return count
