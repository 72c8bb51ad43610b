"""The UK statistics exception (R12, docs/tracking.md), in process on SQLite and PostgreSQL.

Beacons are parsed as the beacon route parses them: the widget's anonymous count has no visit
id, no cookie and no consent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from confide.accounts.service import AccountService
from confide.audit.models import AuditEntry
from confide.clock import FrozenClock, frozen_at, utcnow
from confide.errors import InvalidInput
from confide.realtime.broker import InProcessBroker
from confide.sites.models import Site
from confide.sites.service import SiteService
from confide.storage.engine import Database
from confide.storage.scope import Scope
from confide.tracking.aggregates import Reports
from confide.tracking.events import parse_beacon
from confide.tracking.geo import GeoLocator
from confide.tracking.models import AnonymousCount, PageView, SiteVisitor, Visit
from confide.tracking.service import IngestResult, Request, TrackingService

T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
ORIGIN = "https://uk-dealer.example"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
IP = "81.2.69.142"


@pytest.fixture
def clock() -> Iterator[FrozenClock]:
    with frozen_at(T0) as frozen:
        yield frozen


@dataclass
class World:
    db: Database
    sites: SiteService
    tracking: TrackingService
    site: Site
    clock: FrozenClock

    async def send(
        self,
        events: list[dict[str, Any]],
        *,
        consent: str | None = None,
        visit: str | None = None,
        ua: str = CHROME,
        dnt: bool = False,
        gpc: bool = False,
    ) -> IngestResult:
        data: dict[str, Any] = {"site": self.site.key, "visit": visit, "events": events}
        if consent:
            data["consent"] = consent
        beacon = parse_beacon(data, utcnow(), visit_required=False)
        return await self.tracking.ingest(self.site, beacon, Request(IP, ua, dnt, gpc))

    async def reload(self) -> Site:
        self.site = await self.sites.get(Scope.system(), self.site.id)
        return self.site

    async def counts(self) -> dict[tuple[str, str], int]:
        async with self.db.session(Scope.system(), read_only=True) as s:
            rows = await s.execute(
                select(AnonymousCount.day, AnonymousCount.path, AnonymousCount.pageviews).where(
                    AnonymousCount.site_id == self.site.id
                )
            )
            return {(str(r[0]), r[1]): r[2] for r in rows}

    async def rows_of(self, model: Any) -> int:
        async with self.db.session(Scope.system(), read_only=True) as s:
            query = select(func.count()).select_from(model).where(model.site_id == self.site.id)
            return int(await s.scalar(query) or 0)

    async def audit(self) -> list[str]:
        async with self.db.session(Scope.system(), read_only=True) as s:
            rows = await s.execute(
                select(AuditEntry.purpose)
                .where(
                    AuditEntry.action == "config.site.uk_stats",
                    AuditEntry.subject_ref == self.site.id,
                )
                .order_by(AuditEntry.seq)
            )
            return [str(r[0]) for r in rows]


def pageview(url: str) -> dict[str, Any]:
    return {"type": "pageview", "url": url, "ts": int(utcnow().timestamp() * 1000)}


@asynccontextmanager
async def world(url: str, clock: FrozenClock, *, exception: bool) -> AsyncIterator[World]:
    db = Database(url)
    tracking = TrackingService(db, InProcessBroker(), GeoLocator(), unwatched=lambda _s: True)
    tracking.writer.start()
    try:
        accounts = AccountService(
            db, max_failures=5, lockout=timedelta(minutes=5), session_ttl=timedelta(hours=1)
        )
        org = await accounts.create_organisation("Leeds Motors")
        sites = SiteService(db)
        site = await sites.create_site(organisation_id=org.id, name="Leeds", origins=[ORIGIN])
        if exception:
            site = await sites.configure(site.id, uk_stats_exception=True)
        yield World(db, sites, tracking, site, clock)
    finally:
        await tracking.writer.stop()
        await db.dispose()


def run(
    url: str, clock: FrozenClock, body: Callable[[World], Awaitable[None]], *, exception: bool
) -> None:
    async def go() -> None:
        async with world(url, clock, exception=exception) as w:
            await body(w)

    asyncio.run(go())


def test_counters_increase_without_consent_and_nothing_else_is_stored(
    database_url: str, clock: FrozenClock
) -> None:
    async def body(w: World) -> None:
        assert (w.site.consent_mode, w.site.country, w.site.uk_stats_exception) == (
            "opt-in",
            "GB",
            True,
        )
        first = await w.send([pageview("/stock/1?email=a@b.c&utm_source=x")])
        assert (first.accepted, first.honoured, first.seq) == (1, "anonymous", None)
        await w.send([pageview("/stock/1"), pageview("/finance")])
        # Ids sent anyway are ignored: a count never becomes a visit.
        await w.send([pageview("/finance")], visit="v" * 22)
        today = str(T0.date())
        assert await w.counts() == {(today, "/stock/1"): 2, (today, "/finance"): 2}
        for model in (Visit, SiteVisitor, PageView):
            assert await w.rows_of(model) == 0, model

        clock.advance(timedelta(days=1))
        await w.send([pageview("/stock/1")])
        assert (await w.counts())[(str(T0.date() + timedelta(days=1)), "/stock/1")] == 1

        # The client's report shows them apart from visits (it does not break on them either).
        report = await Reports(w.db).site_report(
            Scope.system(), w.site, T0.date(), T0.date() + timedelta(days=1)
        )
        assert report["totals"]["anonymous_pageviews"] == 5
        assert report["totals"]["visits"] == 0 and report["totals"]["pageviews"] == 0
        assert [d["anonymous_pageviews"] for d in report["series"]] == [4, 1]

    run(database_url, clock, body, exception=True)


def test_signals_refusal_bots_and_the_switch_off_stop_the_counts(
    database_url: str, clock: FrozenClock
) -> None:
    async def body(w: World) -> None:
        assert (await w.send([pageview("/")], dnt=True)).honoured == "dnt"
        assert (await w.send([pageview("/")], gpc=True)).honoured == "gpc"
        assert (await w.send([pageview("/")], consent="denied")).honoured == "consent"
        assert (await w.send([pageview("/")], ua=GOOGLEBOT)).honoured == "bot"
        assert await w.counts() == {}
        # Consent given: normal tracking, and no anonymous count for it.
        granted = await w.send([pageview("/")], consent="granted", visit="g" * 22)
        assert (granted.accepted, granted.honoured) == (1, None)
        assert await w.rows_of(Visit) == 1
        assert await w.counts() == {}
        # A site in "notice" mode tracks anyway: the exception has nothing to add there.
        await w.sites.configure(w.site.id, consent_mode="notice")
        await w.reload()
        assert (await w.send([pageview("/")])).honoured is None
        await w.sites.configure(w.site.id, consent_mode="opt-in", uk_stats_exception=False)
        await w.reload()
        assert (await w.send([pageview("/")])).honoured == "consent"
        assert await w.counts() == {}

    run(database_url, clock, body, exception=True)


def test_the_exception_is_refused_for_a_site_outside_the_uk(
    database_url: str, clock: FrozenClock
) -> None:
    async def body(w: World) -> None:
        # Both in one call: refused as a whole, the country is not changed either.
        with pytest.raises(InvalidInput, match="only to sites in the United Kingdom"):
            await w.sites.configure(w.site.id, country="DE", uk_stats_exception=True)
        assert ((s := await w.reload()).country, s.uk_stats_exception) == ("GB", False)
        await w.sites.configure(w.site.id, country="de")
        with pytest.raises(InvalidInput, match="not to a site in DE"):
            await w.sites.configure(w.site.id, uk_stats_exception=True)
        assert (await w.reload()).uk_stats_exception is False
        # An EU site's visitors are not counted without consent, whatever the database says.
        assert (await w.send([pageview("/")])).honoured == "consent"
        with pytest.raises(InvalidInput, match="two-letter ISO code"):
            await w.sites.configure(w.site.id, country="Germany")

        # On for a UK site; it cannot then leave the UK while the exception is on.
        await w.sites.configure(w.site.id, country="GB", uk_stats_exception=True)
        with pytest.raises(InvalidInput, match="not to a site in FR"):
            await w.sites.configure(w.site.id, country="FR")
        assert ((s := await w.reload()).country, s.uk_stats_exception) == ("GB", True)
        assert await w.audit() == [
            "country: GB -> DE",
            "country: DE -> GB; uk_stats_exception: False -> True",
        ]

    run(database_url, clock, body, exception=False)
