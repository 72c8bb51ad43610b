"""The tracking writer's batch plan stores the same rows through both of its drivers.

On a SQLite file a batch runs on a sqlite3 writer thread (``sqlite_ingest.py``, SQL written out
by hand); on PostgreSQL and in-memory SQLite it runs through SQLAlchemy Core. The same batches
(new visitors, a second tab, a returning visitor, pings, a leave, refused beacons, an invitation)
go through each driver on two copies of one database at the same frozen times, and the tables
are compared as SQLite stores them (text), so the hand-written SQL must also write datetimes,
booleans and JSON exactly as SQLAlchemy does.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import confide.clock
from confide.accounts.service import AccountService
from confide.clock import FrozenClock, utcnow
from confide.sites.models import Site
from confide.sites.service import SiteService
from confide.storage.engine import Database
from confide.storage.migrate import upgrade
from confide.storage.scope import Scope
from confide.tracking.events import parse_beacon
from confide.tracking.models import Invitation
from confide.tracking.service import live_row
from confide.tracking.writer import Pending, Result, TrackingWriter, Usage

#: Microseconds on purpose: the stored text must keep them (``.ffffff``), as SQLAlchemy's does.
T0 = datetime(2026, 3, 28, 11, 59, 30, 123456, tzinfo=UTC)
ORIGIN = "https://dealer.example"
CHROME = Usage("GB", None, None, "Chrome", "131", "Windows", "desktop")
SAFARI = Usage(None, None, None, "Mobile Safari", "18", "iOS", "mobile")
V1, V2, V3, V4, V5 = (f"visit{n}" + "x" * 16 for n in range(1, 6))
C1, C2 = "cookie1" + "y" * 16, "cookie2" + "y" * 16


@pytest.fixture
def frozen_time() -> Iterator[None]:
    """Each run sets its own FrozenClock; the real clock is put back afterwards."""
    saved = confide.clock.clock
    try:
        yield
    finally:
        confide.clock.clock = saved


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A migrated SQLite file with one organisation and two sites; returns (path, key, key)."""
    path = tmp_path_factory.mktemp("drivers") / "seed.db"
    upgrade(f"sqlite:///{path}")

    async def seed() -> tuple[str, str]:
        db = Database(f"sqlite:///{path}")
        try:
            accounts = AccountService(
                db, max_failures=5, lockout=timedelta(minutes=5), session_ttl=timedelta(hours=1)
            )
            org = await accounts.create_organisation("Drivers Motors")
            sites = SiteService(db)
            one = await sites.create_site(
                organisation_id=org.id, name="One", origins=[ORIGIN], consent_mode="notice"
            )
            two = await sites.create_site(
                organisation_id=org.id, name="Two", origins=["https://two.example"]
            )
            return one.key, two.key
        finally:
            await db.dispose()

    one, two = asyncio.run(seed())
    with sqlite3.connect(path) as conn:  # everything in the main file, so a copy has it all
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path, one, two


def pageview(url: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {"type": "pageview", "url": url, "ts": int(at.timestamp() * 1000), **extra}


def ping(kind: str, seq: int, seconds: int, at: datetime) -> dict[str, Any]:
    return {"type": kind, "seq": seq, "seconds": seconds, "ts": int(at.timestamp() * 1000)}


async def _batches(
    db: Database, writer: TrackingWriter, clock: FrozenClock, one_key: str, two_key: str
) -> list[list[Result]]:
    """Three batches (each submitted in one tick, so each is one transaction)."""
    sites = SiteService(db)
    one, two = await sites.by_key(one_key), await sites.by_key(two_key)
    loop = asyncio.get_running_loop()

    async def batch(*beacons: tuple[Site, str | None, str | None, list[Any], Any]) -> list[Result]:
        pending = [
            Pending(
                site,
                parse_beacon({"site": site.key, "visit": v, "visitor": c, "events": e}, utcnow()),
                usage,
                loop.create_future(),
            )
            for site, v, c, e, usage in beacons
        ]
        return list(await asyncio.gather(*(writer.submit(p) for p in pending)))

    t = utcnow()
    results = [
        await batch(
            (one, V1, C1, [pageview("/stock/1?utm_source=news&email=a@b.c", t,
                                    title="Golf", referrer="https://www.google.com/x")], CHROME),
            (one, V2, C1, [pageview("/b", t, referrer=ORIGIN + "/stock/1")], lambda: CHROME),
            (one, V3, None, [pageview("/c", t - timedelta(seconds=40))], SAFARI),
            (one, V4, C2, [ping("ping", 1, 15, t)], CHROME),  # never started: refused
        )
    ]  # fmt: skip
    clock.advance(timedelta(seconds=10))
    t = utcnow()
    async with db.session(Scope.system()) as s:
        s.add(
            Invitation(
                organisation_id=one.organisation_id,
                site_id=one.id,
                visit_id=V1,
                text="Can we help?",
                from_name="Otto",
                created_at=t,
            )
        )
    results.append(
        await batch(
            (one, V1, C1, [ping("ping", 1, 10, t), pageview("/d", t, title="D" * 250)], CHROME),
            (one, V2, C1, [ping("leave", 1, 5, t)], CHROME),
            (two, V3, None, [pageview("/elsewhere", t)], CHROME),  # another site's visit id
            (one, V5, C1, [pageview("/again", t)], SAFARI),  # the browser returns: visit 3
        )
    )
    clock.advance(timedelta(seconds=10))
    t = utcnow()
    results.append(
        await batch((one, V1, C1, [ping("ping", 2, 7, t), ping("ping", 1, 3, t)], CHROME))
    )
    return results


def _run(path: Path, keys: tuple[str, str], *, sqlite3_thread: bool) -> list[list[Result]]:
    """The batches on ``path``, from T0 on a fresh frozen clock."""
    clock = confide.clock.clock = FrozenClock(T0)

    async def go() -> list[list[Result]]:
        db = Database(f"sqlite:///{path}")
        writer = TrackingWriter(db, sqlite3_thread=sqlite3_thread)
        assert (writer._sqlite is not None) is sqlite3_thread
        writer.start()
        try:
            return await _batches(db, writer, clock, *keys)
        finally:
            await writer.stop()
            await db.dispose()

    return asyncio.run(go())


def _tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The rows as SQLite stores them; visitors by cookie hash (their ids are random)."""
    with sqlite3.connect(path) as conn:
        return {
            "visits": conn.execute(
                "SELECT v.id, v.organisation_id, v.site_id, sv.cookie_hash, v.person_id,"
                " v.started_at, v.last_seen_at, v.pageviews, v.first_ts, v.seconds,"
                " v.is_returning, v.country, v.region, v.city, v.browser, v.browser_major, v.os,"
                " v.device, v.referrer, v.channel, v.campaign, v.conversation_id, v.last_path,"
                " v.last_title, typeof(v.is_returning), typeof(v.started_at)"
                " FROM visits v LEFT JOIN site_visitors sv ON sv.id = v.site_visitor_id"
                " ORDER BY v.id"
            ).fetchall(),
            "visitors": conn.execute(
                "SELECT organisation_id, site_id, cookie_hash, first_seen_at, last_seen_at,"
                " visit_count FROM site_visitors ORDER BY cookie_hash"
            ).fetchall(),
            "pages": conn.execute(
                "SELECT id, organisation_id, site_id, visit_id, seq, path, title, at, seconds"
                " FROM page_views ORDER BY id"
            ).fetchall(),
            "invitations": conn.execute(
                "SELECT id, visit_id, text, from_name, created_at, delivered_at FROM invitations"
            ).fetchall(),
        }


def _answers(results: list[list[Result]]) -> list[list[Any]]:
    """What the beacons were told and what operators see, less the label (from a random id)."""
    out = []
    for batch in results:
        rows = []
        for visit, invite in batch:
            row = None
            if visit is not None:
                row = live_row(visit)
                row.pop("label")
            rows.append((row, invite))
        out.append(rows)
    return out


@pytest.mark.usefixtures("frozen_time")
def test_both_drivers_store_the_same_rows(seeded: tuple[Path, str, str], tmp_path: Path) -> None:
    seed, one, two = seeded
    threaded, core = tmp_path / "sqlite3.db", tmp_path / "sqlalchemy.db"
    shutil.copyfile(seed, threaded)
    shutil.copyfile(seed, core)
    by_thread = _run(threaded, (one, two), sqlite3_thread=True)
    by_core = _run(core, (one, two), sqlite3_thread=False)

    assert _answers(by_thread) == _answers(by_core)
    stored = _tables(threaded)
    assert stored == _tables(core)

    # ...and they are the right rows (not the same mistake twice)
    [v1, v2, v3, v5] = stored["visits"]
    assert (v1[0], v1[7], v1[6], v1[9]) == (V1, 2, "2026-03-28 11:59:50.123456", 20)
    assert (v1[18], v1[19], v1[20]) == (
        "https://www.google.com",
        "search",
        '{"utm_source": "news"}',
    )
    assert (v1[22], v1[23]) == ("/d", "D" * 200)
    assert v1[24:] == ("integer", "text")
    # the second tab of a new browser: a second visit of one visitor; an internal referrer
    assert (v2[0], v2[10], v2[18], v2[19], v2[9]) == (V2, 1, None, "direct", 10)
    assert (v3[0], v3[3], v3[9], v3[12:15]) == (V3, None, 0, (None, None, "Mobile Safari"))
    assert (v5[0], v5[10], v5[14]) == (V5, 1, "Mobile Safari")  # a returning browser
    [visitor] = stored["visitors"]
    assert visitor[3:] == ("2026-03-28 11:59:30.123456", "2026-03-28 11:59:40.123456", 3)
    assert [(p[3], p[4], p[5], p[8]) for p in stored["pages"]] == [
        (V1, 1, "/stock/1", 10),
        (V2, 1, "/b", 5),
        (V3, 1, "/c", 0),
        (V1, 2, "/d", 7),
        (V5, 1, "/again", 0),
    ]
    [invitation] = stored["invitations"]
    assert invitation[5] == "2026-03-28 11:59:40.123456"
    first, second, third = _answers(by_thread)
    assert [row is not None for row, _ in first] == [True, True, True, False]
    assert [row is not None for row, _ in second] == [True, True, False, True]
    assert second[0][1] == {"text": "Can we help?", "from": "Otto"} and third[0][1] is None
    assert third[0][0]["pageviews"] == 2 and third[0][0]["returning"] is False
