"""Time the clients' 90-day report (``Reports.site_report``) over a busy site's daily stats.

Seeds ``daily_stats`` as the roll-up would leave it after ``--days`` days of a busy site that
received ``--events`` page views in total (default 10 million over 90 days, ~111,000 a day):
per day one ``total`` row, ``--pages`` page rows (default 500; page views spread Zipf-like),
and rows for channel (6), country (40), device (3) and browser (25). ``--other-sites`` smaller
sites of other organisations share the table (100 pages/day each), as on a real server.
Then ``site_report`` for the full range is called once cold and ``--repeat`` times warm, in
this process, on SQLite (a fresh file, WAL) and PostgreSQL (a fresh database, dropped after).

    .venv/bin/python bench/report_query.py                      # both backends
    .venv/bin/python bench/report_query.py --backends sqlite --repeat 50 --explain

Target (issue): < 500 ms for a 90-day report.

``--rollup`` also seeds ``--raw-days`` days of *raw* visits and page views at the same daily
rate (~37,000 visits and ~111,000 page views a day) and times what the background task does
every minute, ``Reports.rollup([yesterday, today])``, while two probes commit a one-row write
every 20 ms: one through the roll-up's own ``Database`` (as the server's beacon and chat
writers do) and one through a second ``Database`` (as another process, e.g. the CLI). Their
worst waits are how long writes stall behind the roll-up (SQLite: one writer at a time);
writes that fail (``database is locked`` after ``busy_timeout``) are counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import insert, text

from confide.accounts.service import AccountService
from confide.ids import new_id
from confide.sites.service import SiteService
from confide.storage.engine import Database
from confide.storage.migrate import upgrade
from confide.storage.scope import Scope
from confide.tracking.aggregates import Reports
from confide.tracking.models import DailyStat, OptOut, PageView, Visit

CHANNELS = {"search": 0.45, "direct": 0.25, "social": 0.12, "campaign": 0.1, "email": 0.05}
CHANNELS["other"] = 1 - sum(CHANNELS.values())
DEVICES = {"mobile": 0.62, "desktop": 0.33, "tablet": 0.05}


def _split(total: int, weights: list[float]) -> list[int]:
    s = sum(weights)
    return [int(total * w / s) for w in weights]


def day_rows(
    rng: random.Random, org: str, site: str, day: date, pageviews: int, pages: int
) -> list[dict[str, Any]]:
    visits = pageviews // 3
    visitors = int(visits * 0.8)
    seconds = visits * 95
    chats = visits // 150
    rows: list[dict[str, Any]] = []

    def row(dim: str, key: str, v: int, pv: int, c: int, sec: int, vis: int) -> None:
        rows.append(
            {
                "organisation_id": org,
                "site_id": site,
                "day": day,
                "dimension": dim,
                "key": key,
                "visits": v,
                "visitors": vis,
                "pageviews": pv,
                "seconds": sec,
                "chats": c,
            }
        )

    row("total", "", visits, pageviews, chats, seconds, visitors)
    zipf = [1 / (i + 1) ** 1.1 for i in range(pages)]
    for i, pv in enumerate(_split(pageviews, zipf)):
        path = "/" if i == 0 else f"/used-cars/{rng.choice(MAKES)}-{i}"
        row("page", path, max(1, pv * 8 // 10), max(1, pv), 0, pv * 40, max(1, pv * 8 // 10))
    dims = {
        "channel": CHANNELS,
        "device": DEVICES,
        "country": {c: 1 / (i + 1) ** 1.5 for i, c in enumerate(COUNTRIES)},
        "browser": {b: 1 / (i + 1) ** 1.2 for i, b in enumerate(BROWSERS)},
    }
    for dim, weights in dims.items():
        keys = list(weights)
        for key, v in zip(keys, _split(visits, list(weights.values())), strict=True):
            row(dim, key, v, v * 3, v // 150, v * 95, v * 8 // 10)
    return rows


MAKES = ["golf", "polo", "focus", "fiesta", "corsa", "astra", "octavia", "qashqai", "juke", "3008"]
COUNTRIES = ["GB", "IE", "US", "FR", "DE", "ES", "NL", "PL", "IN", "IT"] + [
    f"{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(30)
]
BROWSERS = ["Chrome Mobile", "Mobile Safari", "Chrome", "Edge", "Safari", "Samsung Internet"] + [
    f"Browser {i}" for i in range(19)
]


async def seed(db: Database, args: argparse.Namespace) -> tuple[Any, Scope, date, date]:
    accounts = AccountService(
        db, max_failures=5, lockout=timedelta(minutes=1), session_ttl=timedelta(hours=1)
    )
    sites = SiteService(db)
    rng = random.Random(7)
    org = (await accounts.create_organisation("Busy Dealer")).id
    site = await sites.create_site(
        organisation_id=org, name="Busy Dealer", origins=["https://busy.example"]
    )
    others = []
    for i in range(args.other_sites):
        o = (await accounts.create_organisation(f"Other {i}")).id
        s = await sites.create_site(
            organisation_id=o, name=f"Other {i}", origins=[f"https://other{i}.example"]
        )
        others.append((o, s.id))
    end = datetime.now(UTC).date() - timedelta(days=1)
    start = end - timedelta(days=args.days - 1)
    per_day = args.events // args.days
    total = 0
    batch: list[dict[str, Any]] = []

    async def flush() -> None:
        nonlocal batch, total
        if batch:
            async with db.session(Scope.system()) as s:
                await s.execute(insert(DailyStat), batch)
            total += len(batch)
            batch = []

    for offset in range(args.days):
        day = start + timedelta(days=offset)
        weekly = 1.15 if day.weekday() >= 5 else 0.94  # busier at weekends
        batch += day_rows(rng, org, site.id, day, int(per_day * weekly), args.pages)
        for o, sid in others:
            batch += day_rows(rng, o, sid, day, per_day // 20, 100)
        if len(batch) >= 20_000:
            await flush()
    await flush()
    print(f"  seeded {total:,} daily_stats rows ({args.days} days, {args.other_sites} other sites)")
    return site, Scope.organisation(org), start, end


EXPLAIN_TOP = (
    "SELECT key, sum(visits), sum(pageviews), sum(chats), sum(seconds) FROM daily_stats "
    "WHERE site_id = :site AND dimension = 'page' AND day >= :start AND day <= :end "
    "GROUP BY key ORDER BY sum(pageviews) DESC, key LIMIT 10"
)


async def bench(url: str, args: argparse.Namespace, label: str) -> dict[str, Any]:
    db = Database(url)
    try:
        t = time.perf_counter()
        site, scope, start, end = await seed(db, args)
        seed_s = time.perf_counter() - t
        if args.analyze:
            async with db.engine.begin() as conn:
                await conn.execute(text("ANALYZE"))
        reports = Reports(db)
        t = time.perf_counter()
        first = await reports.site_report(scope, site, start, end)
        cold = time.perf_counter() - t
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            result = await reports.site_report(scope, site, start, end)
            times.append(time.perf_counter() - t)
        assert result == first
        assert len(result["series"]) == args.days
        if args.explain:
            prefix = "EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN ANALYZE "
            async with db.engine.connect() as conn:
                plan = await conn.execute(
                    text(prefix + EXPLAIN_TOP), {"site": site.id, "start": start, "end": end}
                )
                print(f"  plan ({label}, page breakdown):")
                for r in plan.all():
                    print("    " + " | ".join(str(x) for x in r))
        times.sort()
        return {
            "backend": label,
            "seed s": seed_s,
            "cold ms": cold * 1000,
            "min ms": times[0] * 1000,
            "median ms": statistics.median(times) * 1000,
            "p95 ms": times[max(0, round(0.95 * len(times)) - 1)] * 1000,
            "max ms": times[-1] * 1000,
            "visits": result["totals"]["visits"],
            "pageviews": result["totals"]["pageviews"],
        }
    finally:
        await db.dispose()


async def seed_raw(db: Database, args: argparse.Namespace) -> tuple[str, str, list[date]]:
    """Raw visits and page views for ``--raw-days`` days up to today (the busy site only)."""
    accounts = AccountService(
        db, max_failures=5, lockout=timedelta(minutes=1), session_ttl=timedelta(hours=1)
    )
    org = (await accounts.create_organisation("Raw Dealer")).id
    site = await SiteService(db).create_site(
        organisation_id=org, name="Raw Dealer", origins=["https://raw.example"]
    )
    rng = random.Random(11)
    per_day = args.events // args.days
    visits_per_day = per_day // 3
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=n) for n in range(args.raw_days - 1, -1, -1)]
    channels, devices = list(CHANNELS), list(DEVICES)
    total_v = total_p = 0
    for day in days:
        base = datetime.combine(day, datetime.min.time(), UTC)
        visits, pages = [], []
        n_visits = visits_per_day if day != today else visits_per_day // 2
        for _ in range(n_visits):
            vid = new_id()
            start = base + timedelta(seconds=rng.randrange(86_400 if day != today else 43_200))
            n = rng.choice((1, 1, 2, 3, 3, 4, 5, 5))
            for seq in range(1, n + 1):
                pages.append(
                    {
                        "organisation_id": org,
                        "site_id": site.id,
                        "visit_id": vid,
                        "seq": seq,
                        "path": f"/used-cars/{rng.randrange(600)}",
                        "title": None,
                        "at": start + timedelta(seconds=30 * seq),
                        "seconds": 30,
                    }
                )
            visits.append(
                {
                    "id": vid,
                    "organisation_id": org,
                    "site_id": site.id,
                    "site_visitor_id": None,
                    "started_at": start,
                    "last_seen_at": start + timedelta(seconds=30 * n),
                    "pageviews": n,
                    "seconds": 30 * n,
                    "is_returning": False,
                    "country": rng.choice(COUNTRIES[:12]),
                    "browser": rng.choice(BROWSERS[:8]),
                    "browser_major": "131",
                    "os": "Android",
                    "device": rng.choice(devices),
                    "channel": rng.choice(channels),
                    "campaign": {},
                    **({"first_ts": start} if "first_ts" in Visit.__table__.c else {}),
                }
            )
        for chunk in range(0, len(visits), 20_000):
            async with db.session(Scope.system()) as s:
                await s.execute(insert(Visit), visits[chunk : chunk + 20_000])
        for chunk in range(0, len(pages), 20_000):
            async with db.session(Scope.system()) as s:
                await s.execute(insert(PageView), pages[chunk : chunk + 20_000])
        total_v += len(visits)
        total_p += len(pages)
    print(f"  seeded {total_v:,} raw visits and {total_p:,} page views over {len(days)} days")
    return org, site.id, days


async def bench_rollup(url: str, args: argparse.Namespace, label: str) -> dict[str, Any]:
    db = Database(url)
    probe_db = Database(url)
    try:
        t = time.perf_counter()
        org, site_id, days = await seed_raw(db, args)
        seed_s = time.perf_counter() - t
        reports = Reports(db)
        # Two probes commit a one-row write every 20 ms while the roll-up runs: "same" uses the
        # roll-up's Database (as the server's beacon and chat writers do: they queue behind it
        # in-process), "other" a second Database (as another process would, e.g. the CLI).
        waits: dict[str, list[float]] = {"same": [], "other": []}
        failures: list[str] = []
        stop = asyncio.Event()

        async def probe(name: str, database: Database) -> None:
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    async with database.session(Scope.system()) as s:
                        s.add(
                            OptOut(
                                organisation_id=org,
                                site_id=site_id,
                                method="probe",
                                received_at=datetime.now(UTC),
                            )
                        )
                except Exception as exc:  # e.g. "database is locked" after busy_timeout
                    failures.append(
                        f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:60]}"
                    )
                waits[name].append(time.perf_counter() - t0)
                await asyncio.sleep(0.02)

        runs = []
        for _ in range(args.rollup_repeat):
            for w in waits.values():
                w.clear()
            failures.clear()
            stop.clear()
            tasks = [
                asyncio.create_task(probe("same", db)),
                asyncio.create_task(probe("other", probe_db)),
            ]
            await asyncio.sleep(0.2)
            t0 = time.perf_counter()
            rows = await reports.rollup(days[-2:])
            took = time.perf_counter() - t0
            stop.set()
            await asyncio.gather(*tasks)  # a probe blocked behind the roll-up ends after it
            runs.append(
                (
                    took,
                    max(waits["same"], default=0.0),
                    max(waits["other"], default=0.0),
                    rows,
                    list(failures),
                )
            )
        best = min(runs)
        plan = ""
        if db.is_sqlite:
            async with db.engine.connect() as conn:
                r = await conn.execute(
                    text(
                        "EXPLAIN QUERY PLAN SELECT count(*) FROM visits "
                        "WHERE started_at >= :a AND started_at < :b"
                    ),
                    {"a": "2026-01-01", "b": "2026-01-02"},
                )
                plan = "; ".join(str(x[3]) for x in r.all())
                r = await conn.execute(
                    text(
                        "EXPLAIN QUERY PLAN SELECT count(*) FROM page_views "
                        "WHERE at >= :a AND at < :b"
                    ),
                    {"a": "2026-01-01", "b": "2026-01-02"},
                )
                plan += "; " + "; ".join(str(x[3]) for x in r.all())
        return {
            "backend": label,
            "seed s": seed_s,
            "rollup s": best[0],
            "worst write wait s": best[1],
            "worst other-process wait s": best[2],
            "rows": best[3],
            "failed writes": best[4],
            "plan": plan,
        }
    finally:
        await probe_db.dispose()
        await db.dispose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backends", default="sqlite,pg")
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--events", type=int, default=10_000_000, help="page views over all days")
    p.add_argument("--pages", type=int, default=500, help="distinct pages per day")
    p.add_argument("--other-sites", type=int, default=20)
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--analyze", action="store_true", help="run ANALYZE after seeding")
    p.add_argument("--explain", action="store_true", help="print the page breakdown's plan")
    p.add_argument("--cpu", type=int, default=None, help="pin this process to a CPU")
    p.add_argument("--rollup", action="store_true", help="also time the minutely roll-up")
    p.add_argument("--rollup-only", action="store_true", help="only time the roll-up")
    p.add_argument("--raw-days", type=int, default=14, help="days of raw events for --rollup")
    p.add_argument("--rollup-repeat", type=int, default=3)
    args = p.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    print(
        f"# report_query: {args.days} days, {args.events:,} page views, {args.pages} pages/day, "
        f"loadavg {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    rows = []
    rollups = []
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        with contextlib.ExitStack() as stack:
            if backend == "sqlite":
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="confide-bench-rq-"))
                url, label = f"sqlite:///{tmp}/r.db", "SQLite"
            else:
                from confide.testing import postgres_database

                url, label = stack.enter_context(postgres_database()), "PostgreSQL"
            upgrade(url)
            if not args.rollup_only:
                rows.append(asyncio.run(bench(url, args, label)))
                r = rows[-1]
                print(
                    f"  {label}: cold {r['cold ms']:.0f} ms, median {r['median ms']:.0f} ms, "
                    f"p95 {r['p95 ms']:.0f} ms (seed {r['seed s']:.0f} s)",
                    flush=True,
                )
            if args.rollup or args.rollup_only:
                rollups.append(asyncio.run(bench_rollup(url, args, label)))
                r = rollups[-1]
                print(
                    f"  {label}: roll-up of 2 days {r['rollup s']:.2f} s, worst write wait "
                    f"{r['worst write wait s']:.2f} s in-process, "
                    f"{r['worst other-process wait s']:.2f} s from another process "
                    f"(seed {r['seed s']:.0f} s) {r['plan']}"
                    f" failed probe writes: {r['failed writes'][:3] or 'none'}",
                    flush=True,
                )
    if rows:
        print()
        print("| backend | cold ms | min ms | median ms | p95 ms | max ms | < 500 ms |")
        print("|---|---|---|---|---|---|---|")
    for r in rows:
        ok = "yes" if r["p95 ms"] < 500 and r["cold ms"] < 500 else "no"
        print(
            f"| {r['backend']} | {r['cold ms']:.0f} | {r['min ms']:.0f} | {r['median ms']:.0f} "
            f"| {r['p95 ms']:.0f} | {r['max ms']:.0f} | {ok} |"
        )
    if rollups:
        print()
        print(
            "| backend | raw days | roll-up (yesterday + today) s | worst write wait, same "
            "process s | worst write wait, other process s | failed writes |"
        )
        print("|---|---|---|---|---|---|")
        for r in rollups:
            print(
                f"| {r['backend']} | {args.raw_days} | {r['rollup s']:.2f} "
                f"| {r['worst write wait s']:.2f} | {r['worst other-process wait s']:.2f} "
                f"| {len(r['failed writes'])} |"
            )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
