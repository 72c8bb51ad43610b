"""Usage and behavioural data linked to a subject's visits, in the privacy registry."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from confide.privacy.registry import Store, Subject, register, rows_of
from confide.tracking.models import PageView, SiteVisitor, Visit


async def _export(s: AsyncSession, subject: Subject) -> list[dict[str, Any]]:
    visits = await rows_of(s, Visit, Visit.id.in_(subject.visit_ids))
    pages = await rows_of(s, PageView, PageView.visit_id.in_(subject.visit_ids))
    for v in visits:
        v["pages"] = [
            {k: p[k] for k in ("seq", "path", "title", "at", "seconds")}
            for p in sorted(pages, key=lambda p: p["seq"])
            if p["visit_id"] == v["id"]
        ]
    return visits


async def _erase(s: AsyncSession, subject: Subject) -> int:
    n = (
        await s.execute(delete(PageView).where(PageView.visit_id.in_(subject.visit_ids)))
    ).rowcount or 0  # type: ignore[attr-defined]
    n += (await s.execute(delete(Visit).where(Visit.id.in_(subject.visit_ids)))).rowcount or 0  # type: ignore[attr-defined]
    return int(n)


async def _export_browsers(s: AsyncSession, subject: Subject) -> list[dict[str, Any]]:
    rows = await rows_of(s, SiteVisitor, SiteVisitor.id.in_(subject.site_visitor_ids))
    for r in rows:
        r.pop("cookie_hash", None)
    return rows


async def _erase_browsers(s: AsyncSession, subject: Subject) -> int:
    """After the visits (order 31 > 30): the certificate counts each store's own rows."""
    deleted = await s.execute(
        delete(SiteVisitor).where(SiteVisitor.id.in_(subject.site_visitor_ids))
    )
    return int(deleted.rowcount or 0)  # type: ignore[attr-defined]


register(Store("behaviour", ("visits", "page_views"), _export, _erase, order=30))
register(Store("browsers", ("site_visitors",), _export_browsers, _erase_browsers, order=31))
