"""Time a privacy request's heavy steps on a big database, and what sealing costs the chat path.

Part 1, export and erasure. A SQLite file (WAL) is seeded, untimed, with ``--visitors``
pseudonymous browsers of one busy site (default 1,000,000): one ``site_visitors`` row and one
``visits`` row each (plus ``--pageviews`` page views per visit), bulk-inserted with
``executemany`` on a raw ``sqlite3`` connection. Then ``--chatters`` visitors (default 2,000) are
made through the services, as the widget and console make them: a tracked visit linked to the
chat, three messages, name + email + phone (a person, with history) and a lead. For
``--repeat`` of those people, picked at random, this process times:

* **export** = ``fulfil.resolve`` + ``fulfil.export`` in one read-only unit of work (what the
  access package's download does, without the JSON encoding);
* **erase** = ``fulfil.resolve`` + ``fulfil.erase`` in one write unit of work, commit included
  (what an approved deletion does, key shredding included). Each person is erased once.

The same is measured in the same run on a **baseline** database holding only the chatters
(no behavioural rows): the ratio big / baseline is what the million browsers cost.
Target (issue): under one second each.

Part 2, encryption on the message path. ``--senders`` conversations post ``--messages``
messages in total through ``ChatService.post`` (closed loop per sender: the group-commit
``MessageWriter``, as in ``writer_micro.py``), each variant on a fresh database, ``--rounds``
times interleaved: **sealed** (AES-256-GCM under the visitor's key, as shipped) and **plain**,
the baseline, where ``Vault.seal`` is replaced by a no-op that only adds the ``c1:`` prefix the
column type demands. Best round of each; cost = sealed CPU per message / plain - 1.
Target (issue): under 10 %.

    .venv/bin/python bench/privacy_ops.py                                  # the full run
    .venv/bin/python bench/privacy_ops.py --visitors 50000 --chatters 300  # a quick look

Nothing is asserted on time: figures and ratios are printed (``--json FILE`` appends them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shlex
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import md_table, pct, pin_self
from confide.accounts.models import Role, User
from confide.accounts.principal import Principal
from confide.chat.service import ConversationRef
from confide.crypto.vault import PREFIX, Vault
from confide.privacy import fulfil
from confide.privacy.models import PrivacyRequest
from confide.privacy.service import Intake
from confide.settings import Settings
from confide.sites.models import Site
from confide.storage.migrate import upgrade
from confide.storage.scope import Scope
from confide.web.context import AppContext

TEXT = "Is the 2021 Octavia estate still available, and could I book a test drive on Saturday?"
CHANNELS = ("search", "direct", "social", "campaign", "email", "other")
#: How SQLAlchemy stores a UTC datetime in SQLite (naive, microseconds).
SQLITE_TS = "%Y-%m-%d %H:%M:%S.%f"


class QuietMailer:
    """The privacy service's mailer, without an SMTP server (nothing here is about email)."""

    async def send(self, to: str, subject: str, body: str) -> bool:
        return True


# --- part 1: seeding -----------------------------------------------------------------------------


def bulk_behaviour(
    path: Path, org: str, site: str, visitors: int, pageviews: int, reserve: int
) -> list[str]:
    """``visitors`` browsers with one visit each; returns the ids of ``reserve`` visits left
    unlinked for the chatters (the newest ones)."""
    rng = random.Random(3)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")  # seeding only: the measured runs use the app's pragmas
    end = datetime.now(UTC).replace(tzinfo=None)
    reserved: list[str] = []
    batch = 50_000
    for start in range(0, visitors, batch):
        n = min(batch, visitors - start)
        svs, visits, pages = [], [], []
        for i in range(start, start + n):
            sv_id, visit_id = (
                f"sv{i:012d}x{secrets.token_hex(5)}",
                f"vi{i:012d}x{secrets.token_hex(5)}",
            )
            at = end - timedelta(seconds=(visitors - i) * 30 + 600)
            ts = at.strftime(SQLITE_TS)
            svs.append((sv_id, org, site, secrets.token_hex(32), ts, ts, 1))
            visits.append(
                (
                    visit_id, org, site, sv_id, ts, ts, pageviews, ts, 30 * pageviews, 0,
                    "GB", rng.choice(CHANNELS), "{}",
                )
            )  # fmt: skip
            for seq in range(1, pageviews + 1):
                pages.append((org, site, visit_id, seq, f"/used-cars/{rng.randrange(600)}", ts, 30))
            if i >= visitors - reserve:
                reserved.append(visit_id)
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO site_visitors (id, organisation_id, site_id, cookie_hash, "
            "first_seen_at, last_seen_at, visit_count) VALUES (?, ?, ?, ?, ?, ?, ?)",
            svs,
        )
        conn.executemany(
            "INSERT INTO visits (id, organisation_id, site_id, site_visitor_id, started_at, "
            "last_seen_at, pageviews, first_ts, seconds, is_returning, country, channel, "
            "campaign) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            visits,
        )
        if pages:
            conn.executemany(
                "INSERT INTO page_views (organisation_id, site_id, visit_id, seq, path, at, "
                "seconds) VALUES (?, ?, ?, ?, ?, ?, ?)",
                pages,
            )
        conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return reserved


def settings(url: str) -> Settings:
    return Settings(database_url=url, worker=False, rollup_interval_s=0, log_level="WARNING")


async def organisation(url: str) -> tuple[str, str]:
    ctx = AppContext.build(settings(url))
    await ctx.start()
    try:
        org = await ctx.accounts.create_organisation("Busy Dealer")
        site = await ctx.sites.create_site(
            organisation_id=org.id, name="Busy Dealer", origins=["https://busy.example"]
        )
        return org.id, site.id
    finally:
        await ctx.stop()


async def operator(ctx: AppContext, site: Site) -> Principal:
    user = await ctx.accounts.create_user(
        email=f"op-{secrets.token_hex(4)}@example.com",
        name="Operator",
        role=Role.OPERATOR,
        password="bench-password-0123456789",
        site_ids=[site.id],
    )
    async with ctx.db.session(Scope.system()) as s:
        loaded = await s.get(User, user.id)
        assert loaded is not None
        return await ctx.accounts.principal_for(loaded)


async def chatters(
    ctx: AppContext, site: Site, visit_ids: list[str], concurrency: int = 32
) -> list[tuple[str, str]]:
    """One chat visitor per visit id, through the services; returns (person id, email)."""
    op = await operator(ctx, site)
    out: list[tuple[str, str]] = []

    async def one(n: int, visit_id: str) -> None:
        actor, view, _ = await ctx.chat.open_conversation(site, None, None, visit_id)
        ref = ConversationRef(view.id, view.organisation_id, view.site_id, actor.visitor_id)
        for k in range(3):
            await ctx.chat.post(actor, ref, f"m{n}-{k}", f"{TEXT} ({k})")
        email = f"person{n}-{secrets.token_hex(3)}@example.org"
        details: dict[str, object] = {
            "name": f"Person {n}",
            "email": email,
            "phone": f"07400 {100000 + n}",
        }
        await ctx.leads.update_details(op, view.id, details)
        await ctx.leads.update_details(op, view.id, {"phone": f"07400 {900000 - n}"})
        lead = await ctx.leads.create_lead(op, view.id, purpose="test_drive")
        out.append((lead.person_id, email))

    for start in range(0, len(visit_ids), concurrency):
        chunk = visit_ids[start : start + concurrency]
        await asyncio.gather(*(one(start + i, v) for i, v in enumerate(chunk)))
    return out


# --- part 1: measuring ---------------------------------------------------------------------------


async def time_privacy_ops(
    url: str, org: str, people: list[tuple[str, str]], repeat: int
) -> dict[str, list[float]]:
    ctx = AppContext.build(settings(url))
    ctx.privacy.mailer = QuietMailer()  # type: ignore[assignment]
    await ctx.start()
    db = ctx.db
    chosen = random.Random(5).sample(people, min(repeat, len(people)))
    times: dict[str, list[float]] = {"export": [], "erase": [], "rows": []}
    try:
        for person_id, _email in chosen:
            t = time.perf_counter()
            async with db.session(Scope.system(), read_only=True) as s:
                subject = await fulfil.resolve(s, org, [person_id])
                data = await fulfil.export(s, subject)
            times["export"].append(time.perf_counter() - t)
            times["rows"].append(float(sum(len(rows) for rows in data.values())))
        for person_id, email in chosen:
            req = await ctx.privacy.submit(org, Intake("deletion", email=email))
            assert req.person_ids == [person_id]
            t = time.perf_counter()
            async with db.session(Scope.system()) as s:
                subject = await fulfil.resolve(s, org, [person_id])
                await fulfil.erase(s, subject, req.id, db.vault, datetime.now(UTC))
            times["erase"].append(time.perf_counter() - t)
            async with db.session(Scope.system(), read_only=True) as s:
                assert await s.get(PrivacyRequest, req.id) is not None
    finally:
        await ctx.stop()
    return times


def summary(label: str, op: str, values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    return {
        "database": label,
        "op": op,
        "n": len(values),
        "first ms": values[0] * 1000,
        "median ms": statistics.median(values) * 1000,
        "p95 ms": (pct(ordered, 0.95) or 0) * 1000,
        "max ms": ordered[-1] * 1000,
        "< 1 s": "yes" if ordered[-1] < 1.0 else "**no**",
    }


async def build(work: Path, name: str, args: argparse.Namespace, visitors: int) -> dict[str, Any]:
    path = work / f"{name}.db"
    url = f"sqlite:///{path}"
    await asyncio.to_thread(upgrade, url)  # alembic runs its own event loop
    org, site_id = await organisation(url)
    t = time.perf_counter()
    reserved = bulk_behaviour(
        path, org, site_id, visitors + args.chatters, args.pageviews, args.chatters
    )
    bulk_s = time.perf_counter() - t
    ctx = AppContext.build(settings(url))
    await ctx.start()
    try:
        async with ctx.db.session(Scope.system(), read_only=True) as s:
            site = await s.get(Site, site_id)
            assert site is not None
            s.expunge(site)
        t = time.perf_counter()
        people = await chatters(ctx, site, reserved)
        chat_s = time.perf_counter() - t
    finally:
        await ctx.stop()
    size = sum(p.stat().st_size for p in work.glob(f"{name}.db*"))
    print(
        f"  {name}: {visitors + args.chatters:,} browsers ({bulk_s:.1f} s bulk), "
        f"{len(people):,} chatters through the services ({chat_s:.1f} s), {size / 1e6:.0f} MB",
        flush=True,
    )
    return {"url": url, "org": org, "people": people}


async def part1(work: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for name, visitors in (("baseline", 0), ("big", args.visitors)):
        if name == "baseline" and args.no_baseline:
            continue
        made = await build(work, name, args, visitors)
        times = await time_privacy_ops(made["url"], made["org"], made["people"], args.repeat)
        label = f"{visitors + args.chatters:,} browsers"
        rows.append(summary(label, "export", times["export"]))
        rows.append(summary(label, "erase", times["erase"]))
        print(
            f"  {name}: export rows per person {statistics.median(times['rows']):.0f}", flush=True
        )
    return rows


# --- part 2: the cost of sealing ------------------------------------------------------------------


def _plain_seal(self: Vault, subject_id: str, org_id: str, plaintext: str | None) -> str | None:
    return None if plaintext is None else f"{PREFIX}{subject_id}:{plaintext}"


@contextmanager
def sealing(enabled: bool) -> Iterator[None]:
    original = Vault.seal
    if not enabled:
        Vault.seal = _plain_seal  # type: ignore[method-assign]
    try:
        yield
    finally:
        Vault.seal = original  # type: ignore[method-assign]


async def writer_run(url: str, senders: int, messages: int) -> dict[str, float]:
    ctx = AppContext.build(settings(url))
    await ctx.start()
    try:
        org = await ctx.accounts.create_organisation("Bench Org")
        site = await ctx.sites.create_site(
            organisation_id=org.id, name="Bench", origins=["http://bench.local"], greeting=None
        )
        refs = []
        for _ in range(senders):
            actor, view, _ = await ctx.chat.open_conversation(site, None, None)
            refs.append((actor, ConversationRef(view.id, org.id, site.id, actor.visitor_id)))
        per = messages // senders

        async def sender(i: int) -> None:
            actor, ref = refs[i]
            for n in range(per):
                await ctx.chat.post(actor, ref, f"s{i:05d}-{n:08d}", TEXT)

        m0 = ctx.writer.messages
        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(sender(i) for i in range(senders)))
        cpu1, t1 = time.process_time(), time.perf_counter()
        done = ctx.writer.messages - m0
    finally:
        await ctx.stop()
    return {"msg/s": done / (t1 - t0), "CPU µs/msg": (cpu1 - cpu0) / done * 1e6, "messages": done}


def seal_micro(n: int = 20_000) -> dict[str, float]:
    """One ``seal`` call alone, warm key cache: µs per call, sealed and plain."""
    out = {}
    with tempfile.TemporaryDirectory() as d:
        from confide.crypto.keystore import KeyStore
        from confide.crypto.vault import new_master_key_spec, parse_master_keys

        vault = Vault(KeyStore(f"sqlite:///{d}/k.db"), parse_master_keys(new_master_key_spec("b")))
        vault.seal("subject", "org", "warm")
        for name, fn in (("sealed", Vault.seal), ("plain", _plain_seal)):
            t = time.perf_counter()
            for _ in range(n):
                fn(vault, "subject", "org", TEXT)
            out[name] = (time.perf_counter() - t) / n * 1e6
        vault.store.close()
    return out


async def part2(work: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    best: dict[str, dict[str, float]] = {}
    for r in range(args.rounds):
        order = ("sealed", "plain") if r % 2 == 0 else ("plain", "sealed")
        for variant in order:
            url = f"sqlite:///{work / f'writer-{variant}-{r}.db'}"
            await asyncio.to_thread(upgrade, url)  # alembic runs its own event loop
            with sealing(variant == "sealed"):
                got = await writer_run(url, args.senders, args.messages)
            print(
                f"  round {r + 1} {variant}: {got['msg/s']:,.0f} msg/s, "
                f"{got['CPU µs/msg']:.1f} µs CPU/msg",
                flush=True,
            )
            # Neighbours only ever add time: the best round of each figure, independently.
            mine = best.setdefault(variant, dict(got))
            mine["msg/s"] = max(mine["msg/s"], got["msg/s"])
            mine["CPU µs/msg"] = min(mine["CPU µs/msg"], got["CPU µs/msg"])
    micro = seal_micro()
    return [
        {
            "variant": variant,
            "senders": args.senders,
            "messages": int(best[variant]["messages"]),
            "best msg/s": best[variant]["msg/s"],
            "best CPU µs/msg": best[variant]["CPU µs/msg"],
            "seal() µs": micro[variant],
        }
        for variant in ("plain", "sealed")
    ]


# --- main ----------------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--visitors", type=int, default=1_000_000, help="pseudonymous browsers")
    p.add_argument("--pageviews", type=int, default=1, help="page views per bulk visit")
    p.add_argument("--chatters", type=int, default=2_000, help="chat visitors made by services")
    p.add_argument("--repeat", type=int, default=20, help="persons exported and erased")
    p.add_argument("--no-baseline", action="store_true", help="skip the chatters-only database")
    p.add_argument("--senders", type=int, default=50)
    p.add_argument("--messages", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--parts", default="1,2", help="1 = export/erase, 2 = sealing cost")
    p.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    p.add_argument("--json", default=None, help="append the result rows to this file")
    p.add_argument("--keep", action="store_true", help="keep the temporary databases")
    a = p.parse_args()
    venv_python = os.path.relpath(sys.executable)
    print("command:", shlex.join([venv_python, *sys.argv]), flush=True)
    pin_self(a.cpu)
    work = Path(tempfile.mkdtemp(prefix="confide-privacy-"))
    parts = {x.strip() for x in a.parts.split(",")}
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        if "1" in parts:
            print("part 1: export and erase one person", flush=True)
            results["ops"] = asyncio.run(part1(work, a))
        if "2" in parts:
            print("part 2: sealing on the message path", flush=True)
            results["sealing"] = asyncio.run(part2(work, a))
    finally:
        if a.keep:
            print(f"databases kept in {work}")
        else:
            for f in work.iterdir():
                f.unlink()
            work.rmdir()
    if "ops" in results:
        rows = results["ops"]
        print()
        cols = ["database", "op", "n", "first ms", "median ms", "p95 ms", "max ms", "< 1 s"]
        print(md_table(rows, [(c, c) for c in cols]))
        base = {r["op"]: r for r in rows[:2]} if not a.no_baseline else {}
        if base:
            print()
            print("| op | big / baseline (median) | big / baseline (max) |")
            print("|---|---|---|")
            for r in rows[2:]:
                b = base[r["op"]]
                print(
                    f"| {r['op']} | {r['median ms'] / b['median ms']:.1f}x "
                    f"| {r['max ms'] / b['max ms']:.1f}x |"
                )
    if "sealing" in results:
        rows = results["sealing"]
        plain, sealed = rows
        cost = sealed["best CPU µs/msg"] / plain["best CPU µs/msg"] - 1
        drop = 1 - sealed["best msg/s"] / plain["best msg/s"]
        print()
        cols = ["variant", "senders", "messages", "best msg/s", "best CPU µs/msg", "seal() µs"]
        print(md_table(rows, [(c, c) for c in cols]))
        print()
        print(
            f"sealing: CPU per message {cost * 100:+.1f} %, throughput {-drop * 100:+.1f} % "
            f"(target < 10 %: {'yes' if max(cost, drop) < 0.10 else 'no'})"
        )
    if a.json:
        with open(a.json, "a") as out:
            for kind, rows in results.items():
                for row in rows:
                    out.write(json.dumps({"bench": "privacy_ops", "part": kind, **row}) + "\n")


if __name__ == "__main__":
    main()
