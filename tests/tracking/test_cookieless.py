"""Cookieless counting (R21, docs/tracking.md), in process on SQLite and PostgreSQL, on a clock
the test moves (``confide.clock``).

The tracking service runs as the server runs it (its group-commit writer, the sqlite3 thread on
a SQLite file); beacons are parsed as the beacon route parses them for a cookieless site (no
visit id, no cookie).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import delete, func, select

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
from confide.tracking.cookieless import visitor_key
from confide.tracking.events import parse_beacon
from confide.tracking.geo import GeoLocator
from confide.tracking.models import OptOut, PageView, SiteVisitor, TrackingSalt, Visit
from confide.tracking.rollup import RollupTask
from confide.tracking.service import IngestResult, Request, TrackingService
from confide.tracking.useragent import reduce

T = TypeVar("T")

#: A Tuesday, mid-morning: the weekly salt's period runs Monday to Sunday.
T0 = datetime(2026, 3, 17, 9, 30, tzinfo=UTC)
ORIGIN = "https://cookieless.example"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 CanaryUA/4.2"
)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
IP = "203.0.113.77"
SAME_NET = "203.0.113.201"  # the same /24
OTHER_NET = "198.51.100.77"


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
        ip: str = IP,
        ua: str = CHROME,
        consent: str | None = None,
        dnt: bool = False,
        gpc: bool = False,
        site: Site | None = None,
    ) -> IngestResult:
        site = site or self.site
        data = {"site": site.key, "visit": None, "visitor": None, "events": events}
        if consent:
            data["consent"] = consent
        beacon = parse_beacon(data, utcnow(), visit_required=False)
        return await self.tracking.ingest(site, beacon, Request(ip, ua, dnt, gpc))

    async def reload(self) -> None:
        self.site = await self.sites.get(Scope.system(), self.site.id)

    async def scalar(self, query: Any) -> Any:
        async with self.db.session(Scope.system(), read_only=True) as s:
            return await s.scalar(query)

    async def rows(self, query: Any) -> list[Any]:
        async with self.db.session(Scope.system(), read_only=True) as s:
            return list((await s.execute(query)).all())

    async def count(self, model: Any) -> int:
        """Rows of ``model`` on this world's site."""
        query = select(func.count()).select_from(model).where(model.site_id == self.site.id)
        return int(await self.scalar(query) or 0)

    async def key_of(self, visit_id: str) -> str:
        return str(
            await self.scalar(
                select(SiteVisitor.cookie_hash)
                .join(Visit, Visit.site_visitor_id == SiteVisitor.id)
                .where(Visit.id == visit_id)
            )
        )

    async def salts(self) -> list[tuple[str, Any, datetime]]:
        return [
            (r[0], r[1], r[2])
            for r in await self.rows(
                select(TrackingSalt.rotation, TrackingSalt.period_start, TrackingSalt.created_at)
            )
        ]


def pageview(url: str = "/") -> dict[str, Any]:
    return {"type": "pageview", "url": url, "ts": int(utcnow().timestamp() * 1000)}


def ping(seq: int, seconds: int) -> dict[str, Any]:
    return {"type": "ping", "seq": seq, "seconds": seconds, "ts": int(utcnow().timestamp() * 1000)}


@asynccontextmanager
async def world(url: str, clock: FrozenClock, mode: str = "notice") -> AsyncIterator[World]:
    db = Database(url)
    tracking = TrackingService(db, InProcessBroker(), GeoLocator(), unwatched=lambda _s: True)
    tracking.writer.start()
    async with db.session(Scope.system()) as s:  # salts are global: each test starts without
        await s.execute(delete(TrackingSalt))
    try:
        accounts = AccountService(
            db, max_failures=5, lockout=timedelta(minutes=5), session_ttl=timedelta(hours=1)
        )
        org = await accounts.create_organisation("Cookieless Cars")
        sites = SiteService(db)
        site = await sites.create_site(
            organisation_id=org.id, name="No Cookies", origins=[ORIGIN], consent_mode=mode
        )
        site = await sites.configure(site.id, tracking_identity="cookieless")
        yield World(db, sites, tracking, site, clock)
    finally:
        await tracking.writer.stop()
        await db.dispose()


def run(url: str, clock: FrozenClock, body: Callable[[World], Awaitable[None]], **kw: Any) -> None:
    async def go() -> None:
        async with world(url, clock, **kw) as w:
            await body(w)

    asyncio.run(go())


# --- the key and the visit ------------------------------------------------------------------


def test_same_network_and_browser_on_one_day_is_one_visitor_who_returns(
    database_url: str, clock: FrozenClock
) -> None:
    async def body(w: World) -> None:
        first = await w.send([pageview("/stock/1")])
        assert (first.accepted, first.honoured, first.seq) == (1, None, 1)
        [(visit_id,)] = await w.rows(select(Visit.id).where(Visit.site_id == w.site.id))
        key = await w.key_of(visit_id)
        # The documented derivation: HMAC-SHA256(the day's salt, site, /24, reduced browser).
        [(salt_hex,)] = await w.rows(select(TrackingSalt.salt))
        assert key == visitor_key(bytes.fromhex(salt_hex), w.site.id, IP, reduce(CHROME))
        assert key != visitor_key(bytes.fromhex(salt_hex), "another-site", IP, reduce(CHROME))

        # Another address in the same /24, five minutes on: the same visit, page 2, and a ping
        # with the number the reply gave lands on that page.
        clock.advance(timedelta(minutes=5))
        second = await w.send([pageview("/stock/2")], ip=SAME_NET)
        assert second.seq == 2
        await w.send([ping(2, 15)], ip=SAME_NET)
        pages = await w.rows(
            select(PageView.seq, PageView.path, PageView.seconds)
            .where(PageView.visit_id == visit_id)
            .order_by(PageView.seq)
        )
        assert pages == [(1, "/stock/1", 0), (2, "/stock/2", 15)]

        # 31 minutes without a beacon: a new visit by the same (returning) visitor.
        clock.advance(timedelta(minutes=31))
        third = await w.send([pageview("/finance")])
        assert third.seq == 1
        visits = await w.rows(
            select(Visit.id, Visit.site_visitor_id, Visit.is_returning, Visit.pageviews)
            .where(Visit.site_id == w.site.id)
            .order_by(Visit.started_at)
        )
        assert len(visits) == 2
        assert visits[0][0] == visit_id and visits[0][2:] == (False, 2)
        assert visits[1][1] == visits[0][1] and visits[1][2:] == (True, 1)
        assert await w.count(SiteVisitor) == 1
        assert (
            await w.scalar(select(SiteVisitor.visit_count).where(SiteVisitor.site_id == w.site.id))
            == 2
        )

        # Another browser, or another network: other visitors.
        await w.send([pageview()], ua=FIREFOX)
        await w.send([pageview()], ip=OTHER_NET)
        assert await w.count(SiteVisitor) == 3
        # Ids a browser sends anyway are ignored: the server's visit stands.
        beacon = parse_beacon(
            {"site": w.site.key, "visit": "x" * 22, "visitor": "y" * 22, "events": [pageview()]},
            utcnow(),
        )
        await w.tracking.ingest(w.site, beacon, Request(IP, CHROME, False, False))
        assert await w.scalar(select(Visit).where(Visit.id == "x" * 22)) is None
        assert await w.scalar(select(Visit.pageviews).where(Visit.id == visits[1][0])) == 2

    run(database_url, clock, body)


def test_the_key_changes_when_the_salt_rotates_and_old_salts_are_destroyed(
    database_url: str, clock: FrozenClock
) -> None:
    async def body(w: World) -> None:
        keys = []
        for day in range(4):
            if day:
                clock.advance(timedelta(days=1))
            await w.send([pageview()])
            [(visit_id,)] = await w.rows(
                select(Visit.id)
                .where(Visit.site_id == w.site.id)
                .order_by(Visit.started_at.desc())
                .limit(1)
            )
            keys.append(await w.key_of(visit_id))
            salts = await w.salts()
            assert len(salts) <= 2
            assert all(utcnow() - created < timedelta(hours=48) for _r, _p, created in salts)
            assert [p for _r, p, _c in salts] == [utcnow().date()]
        assert len(set(keys)) == 4, "a new day's salt gives a new key"
        new_day = await w.rows(
            select(Visit.is_returning).where(Visit.site_id == w.site.id).order_by(Visit.started_at)
        )
        assert [r[0] for r in new_day] == [False] * 4  # not recognised across days

        # No visitor for three days: the roll-up schedule destroys the salt all the same.
        clock.advance(timedelta(days=3))
        await RollupTask(Reports(w.db), interval_s=0, salts=w.tracking.salts).run_once()
        assert await w.salts() == []

        # Weekly rotation (the client's choice): one key all week, a new one the next.
        await w.sites.configure(w.site.id, salt_rotation="weekly")
        await w.reload()
        weekly = []
        for _ in range(3):
            await w.send([pageview()], ip=OTHER_NET)
            [(visit_id,)] = await w.rows(
                select(Visit.id)
                .where(Visit.site_id == w.site.id)
                .order_by(Visit.started_at.desc())
                .limit(1)
            )
            weekly.append(await w.key_of(visit_id))
            clock.advance(timedelta(days=1, hours=1))
        # T0 + 7 days is a Tuesday: these three days are one ISO week
        assert len(set(weekly)) == 1
        clock.advance(timedelta(days=6))
        await w.send([pageview()], ip=OTHER_NET)
        [(visit_id,)] = await w.rows(
            select(Visit.id)
            .where(Visit.site_id == w.site.id)
            .order_by(Visit.started_at.desc())
            .limit(1)
        )
        assert await w.key_of(visit_id) != weekly[0]
        assert [r for r, _p, _c in await w.salts()] == ["weekly"]

    run(database_url, clock, body)


# --- consent and signals are unchanged --------------------------------------------------------


def test_cookieless_is_not_a_consent_bypass(database_url: str, clock: FrozenClock) -> None:
    async def body(w: World) -> None:
        refused = await w.send([pageview()])
        assert (refused.accepted, refused.honoured) == (0, "consent")
        assert (await w.send([pageview()], consent="granted", dnt=True)).honoured == "dnt"
        assert (await w.send([pageview()], consent="granted", gpc=True)).honoured == "gpc"
        assert await w.count(Visit) == 0
        assert await w.count(SiteVisitor) == 0
        assert await w.count(OptOut) == 1
        granted = await w.send([pageview()], consent="granted")
        assert (granted.accepted, granted.seq) == (1, 1)

    run(database_url, clock, body, mode="opt-in")


# --- configuration ------------------------------------------------------------------------------


def test_identity_settings_are_validated_and_audited(database_url: str, clock: FrozenClock) -> None:
    async def body(w: World) -> None:
        # A bad value changes nothing, not even the good value given with it.
        bad: list[dict[str, Any]] = [
            {"tracking_identity": "fingerprint", "salt_rotation": "weekly"},
            {"tracking_identity": "cookie", "salt_rotation": "yearly"},
        ]
        for change in bad:
            with pytest.raises(InvalidInput):
                await w.sites.configure(w.site.id, **change)
        await w.reload()
        assert (w.site.tracking_identity, w.site.salt_rotation) == ("cookieless", "daily")
        await w.sites.configure(w.site.id, salt_rotation="monthly")
        await w.sites.configure(w.site.id, salt_rotation="monthly")  # no change: no entry
        entries = await w.rows(
            select(AuditEntry.purpose)
            .where(AuditEntry.action == "config.site.identity", AuditEntry.subject_ref == w.site.id)
            .order_by(AuditEntry.seq)
        )
        assert [e[0] for e in entries] == [
            "tracking_identity: cookie -> cookieless",
            "salt_rotation: daily -> monthly",
        ]

    run(database_url, clock, body)


# --- nothing personal kept --------------------------------------------------------------------


def _database_text(url: str) -> bytes:
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        pytest.skip("pg_dump not installed")
    done = subprocess.run(
        [pg_dump, "--data-only", "--inserts", url], capture_output=True, timeout=60, check=True
    )
    return done.stdout


def test_the_address_and_user_agent_are_never_stored(database_url: str, clock: FrozenClock) -> None:
    async def body(w: World) -> None:
        result = await w.send([pageview("/contact")], ip="203.0.113.177")
        assert result.accepted == 1
        await w.send([ping(1, 30)], ip="203.0.113.177")

    run(database_url, clock, body)
    stored = _database_text(database_url)
    assert b"203.0.113.177" not in stored
    assert b"CanaryUA" not in stored and CHROME.encode() not in stored


def test_new_visit_ids_sort_by_their_time(clock: FrozenClock) -> None:
    """Like the widget's, so the indexes on visit ids grow at one end (docs/performance.md)."""
    from confide.tracking.cookieless import new_visit_id
    from confide.tracking.events import _VISIT_ID

    ids = []
    for _ in range(3):
        ids.append(new_visit_id("0" * 64))
        clock.advance(timedelta(minutes=7))
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert all(_VISIT_ID.fullmatch(i) for i in ids)
    assert new_visit_id("0" * 64) != new_visit_id("1" * 64)
