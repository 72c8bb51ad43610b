"""Live chat latency before, during and after the retention purge (issue 6).

The purge (``confide retention run``, ``src/confide/retention/purge.py``) deletes raw
behavioural rows in batches of ``batch * 4`` visit ids, each batch its own short transaction, so
that the chat's writes interleave. On SQLite there is one writer at a time: every purge
transaction holds the write lock the chat's group commit needs. This measures what the chat
feels.

1. **Fixture.** The chat fixture of ``chat_load.py`` (real CLI: ``confide migrate``,
   ``org create``, ``site create``, ``user create``; ``bench/common.py``), plus ``--visits``
   visits with ``--pages-per-visit`` page views each (default 250,000 x 3: one million rows)
   for that organisation, spread over its sites, ``started_at``/``at`` ``--age-days`` (730) in
   the past, so the default 395-day behaviour retention makes all of them due. Bulk-inserted,
   untimed, with ``executemany`` on a raw ``sqlite3`` connection (no ``ANALYZE``: the
   application never runs it either).
2. **Traffic.** ``confide serve`` on a copy of that file, pinned to ``--server-cpu`` (0); this
   process (the load generator, uvloop) pinned to ``--client-cpu`` (1). The connections and
   the set-up are ``chat_load.py``'s (``open_visitor``, ``open_operator``, ``accept``): C
   visitors with an open conversation, each accepted by an operator socket, 10 per site. Then
   100-character ``send`` frames, open loop, round-robin over the conversations at ``--rate``
   msg/s (1 ms tick), for the whole run.
3. **Windows.** After ``--warmup`` s: ``--baseline`` s before the purge; then ``confide
   retention run`` in its own process against the same database (pinned to ``--purge-cpu``,
   default the generator's CPU so that the server keeps its core: what is measured is the
   database, not two processes sharing a core; ``--purge-cpu 0`` shows that case), from its
   start until it exits; then ``--after`` s. Each message counts in the window its *actual
   send* time falls in. Latency = the operator's socket receives the ``message`` - send; ack =
   the visitor receives the ``ack`` (after the commit) - send. ``tick lag`` is how late this
   process's own 1 ms tick woke up (above a few ms the generator, not the server, adds latency).

Which purge (``--purge-in``): ``cli`` (default) as above; ``server``: the daily task inside
``confide serve`` (``RetentionTask``, fired by ``CONFIDE_RETENTION_INTERVAL_S`` =
``--server-purge-at`` s after the server starts; the baseline is what precedes it), its start
and end read from ``retention_runs``; ``sql``: the behaviour rule's statements written out in
``sqlite3`` in its own process (this file, ``--sql-purge``) with ``--sql-visits`` per
transaction and a sleep of ``--sql-pause`` x the lock hold after each commit: to try batch
sizes and pacing without touching the product.

Prints a table per window, the ratio p99 during/before, the purge's duration and rows/s (rows
counted in the database before and after), the time between the purge's progress lines (one
line per committed batch), the load average and the exact command. Asserts nothing on time.

    .venv/bin/python bench/purge_during_chat.py                                     # 1M rows
    .venv/bin/python bench/purge_during_chat.py --visits 20000 --baseline 5 --after 5  # quick
    setsid .venv/bin/python bench/purge_during_chat.py --nice -19 --wait-quiet 30   # shielded
    .venv/bin/python bench/purge_during_chat.py --purge-in sql --sql-visits 200 --sql-pause 1
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import gc
import itertools
import json
import os
import random
import resource
import secrets
import shlex
import shutil
import sqlite3
import sys
import time
from array import array
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson

import common
from chat_load import Conn, Stats, accept, close_all, open_operator, open_visitor, wait_quiet
from common import ProcWatch, Server, busy_pct, cpu_busy_jiffies, fmt, md_table, pct

mono = time.monotonic_ns
TEXT_LEN = 100
#: How SQLAlchemy stores a UTC datetime in SQLite (naive, microseconds).
SQLITE_TS = "%Y-%m-%d %H:%M:%S.%f"
CHANNELS = ("search", "direct", "social", "campaign", "email", "other")
DEVICES = ("desktop", "mobile", "tablet")
#: Rows per seeding transaction: large enough that the commits do not dominate.
SEED_CHUNK = 50_000


# --- fixture ---------------------------------------------------------------------------------


def seed_behaviour(db: Path, org_id: str, visits: int, pages: int, age_days: int) -> float:
    """``visits`` old visits with ``pages`` page views each, round-robin over the org's sites,
    spread over 30 days ending ``age_days`` ago. Returns the seconds it took (not measured)."""
    t = time.monotonic()
    rng = random.Random(6)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")  # seeding only; serve and the purge: the app's own
    q = "SELECT id FROM sites WHERE organisation_id = ?"
    sites = [r[0] for r in conn.execute(q, (org_id,))]
    end = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=age_days)
    step = 30 * 86400 / max(1, visits)
    for start in range(0, visits, SEED_CHUNK):
        vrows, prows = [], []
        for i in range(start, min(visits, start + SEED_CHUNK)):
            vid, site = secrets.token_urlsafe(16), sites[i % len(sites)]
            at = end - timedelta(seconds=(visits - i) * step)
            ts = at.strftime(SQLITE_TS)
            vrows.append(
                (
                    vid, org_id, site, ts, ts, pages, ts, 30 * pages, 0, "GB",
                    rng.choice(DEVICES), rng.choice(CHANNELS), "{}",
                )
            )  # fmt: skip
            for seq in range(1, pages + 1):
                pts = (at + timedelta(seconds=30 * (seq - 1))).strftime(SQLITE_TS)
                prows.append((org_id, site, vid, seq, f"/used-cars/{rng.randrange(600)}", pts, 30))
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO visits (id, organisation_id, site_id, started_at, last_seen_at, "
            "pageviews, first_ts, seconds, is_returning, country, device, channel, campaign) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            vrows,
        )
        if prows:
            conn.executemany(
                "INSERT INTO page_views (organisation_id, site_id, visit_id, seq, path, at, "
                "seconds) VALUES (?, ?, ?, ?, ?, ?, ?)",
                prows,
            )
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the template is copied as a plain file
    conn.close()
    return time.monotonic() - t


def count_rows(db: Path) -> tuple[int, int]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as c:
        c.execute("PRAGMA busy_timeout=5000")
        v = c.execute("SELECT count(*) FROM visits").fetchone()[0]
        p = c.execute("SELECT count(*) FROM page_views").fetchone()[0]
    return int(v), int(p)


# --- traffic ---------------------------------------------------------------------------------


class Recorder:
    """Per message index k: actual send, operator receive and ack times (monotonic ns, 0 = not
    yet), plus this process's tick lag and the error frames, each with its time."""

    def __init__(self) -> None:
        self.sent = array("q")
        self.recv = array("q")
        self.ack = array("q")
        self.lag_t = array("q")
        self.lag = array("q")
        self.errors: list[tuple[int, str]] = []
        self.dups = 0

    def on_operator(self, raw: bytes) -> None:
        now = mono()
        f = orjson.loads(raw)
        if f.get("type") == "message":
            k = int(f["text"][0:8], 16)
            if self.recv[k]:
                self.dups += 1
            else:
                self.recv[k] = now
        elif f.get("type") == "error":
            self.errors.append((now, f"operator:{f.get('code')}"))

    def on_visitor(self, raw: bytes) -> None:
        now = mono()
        f = orjson.loads(raw)
        kind = f.get("type")
        if kind == "ack":
            k = int(f["client_id"][1:9], 16)
            if not self.ack[k]:
                self.ack[k] = now
        elif kind == "error":
            self.errors.append((now, f"visitor:{f.get('code')}"))


async def drive(
    rec: Recorder, visitors: list[Conn], conv_ids: list[str], rate: float, stop: asyncio.Event
) -> None:
    """Open-loop sends at ``rate`` until ``stop`` is set (as chat_load.drive, without an end)."""
    C = len(conv_ids)
    pad = "x" * (TEXT_LEN - 8)
    sends = [v.ws.send_text for v in visitors]
    dumps = orjson.dumps
    period = 1e9 / rate
    t0 = mono()
    k = 0
    while not stop.is_set():
        due = int((mono() - t0) / period) + 1
        while k < due:
            conv = k % C
            frame = {
                "type": "send",
                "conversation": conv_ids[conv],
                "client_id": f"m{k:08x}",
                "text": f"{k:08x}{pad}",
            }
            rec.sent.append(mono())
            rec.recv.append(0)
            rec.ack.append(0)
            try:
                sends[conv](dumps(frame))
            except ConnectionError:
                rec.errors.append((mono(), "visitor:send_on_closed"))
            k += 1
        before = mono()
        await asyncio.sleep(0.001)  # >= 1 ms: uvloop rounds shorter sleeps to 0
        rec.lag_t.append(before)
        rec.lag.append(mono() - before - 1_000_000)


# --- the purge -------------------------------------------------------------------------------


async def run_purge(srv: Server, args: argparse.Namespace) -> dict[str, Any]:
    """``confide retention run`` against the server's database, in its own process; each
    progress line (one per committed batch) is time-stamped here."""
    if args.purge_in == "sql":
        cmd = [sys.executable, __file__, "--sql-purge", str(srv.workdir / "bench.db")]
        cmd += ["--sql-visits", str(args.sql_visits), "--sql-pause", str(args.sql_pause)]
    else:
        cmd = [common.confide_bin(), "retention", "run", "--database-url", srv.extra["db_url"]]
        cmd += ["--exports", str(srv.workdir / "exports")]
    if args.purge_cpu >= 0 and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(args.purge_cpu), *cmd]
    if common.NICE and shutil.which("nice"):
        cmd = ["nice", "-n", str(common.NICE), *cmd]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = mono()
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=common._server_env(None),
        cwd=common.ROOT,
    )
    lines: list[tuple[int, str]] = []

    async def read_err() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            lines.append((mono(), raw.decode(errors="replace").rstrip()))

    reader = asyncio.create_task(read_err())
    assert proc.stdout is not None
    out_task = asyncio.create_task(proc.stdout.read())
    interrupted = False
    try:
        await asyncio.wait_for(proc.wait(), args.max_purge)
    except TimeoutError:
        interrupted = True  # the purge is safe to interrupt: the next run continues
        proc.send_signal(2)
        await proc.wait()
    t1 = mono()
    await reader
    out = (await out_task).decode(errors="replace")
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    batches = [t for t, line in lines if "behaviour: visits" in line]
    # time between consecutive committed batches (the first line also carries the start-up)
    gaps = sorted(b - a for a, b in itertools.pairwise(batches))
    return {
        "t0": t0,
        "t1": t1,
        "rc": proc.returncode,
        "interrupted": interrupted,
        "stdout": out.strip(),
        "stderr_tail": [line for _, line in lines[-3:]],
        "batches": len(batches),
        "first_batch_s": (batches[0] - t0) / 1e9 if batches else None,
        "gap_p50_ms": _ms(pct(gaps, 0.5)),
        "gap_p90_ms": _ms(pct(gaps, 0.9)),
        "gap_max_ms": _ms(gaps[-1] if gaps else None),
        "cpu_s": round(cpu, 2),
    }


def sql_purge(db: str, visits_per_tx: int, pause: float) -> None:
    """``--purge-in sql``: the behaviour rule of ``Purger._behaviour`` written out in stdlib
    ``sqlite3`` (same statements, the application's pragmas), to try batch sizes and pacing
    without touching the product. ``pause``: after each commit, sleep ``pause`` x the time the
    write lock was held (0 = the product's ``asyncio.sleep(0)``). Progress lines as the CLI's;
    the hold times are printed on stdout at the end."""
    conn = sqlite3.connect(db, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute("PRAGMA busy_timeout=5000")
    holds: list[float] = []
    removed = 0
    orgs = conn.execute("SELECT id, behaviour_retention_days FROM organisations").fetchall()
    for org_id, days in orgs:
        cutoff = (datetime.now(UTC) - timedelta(days=days)).replace(tzinfo=None)
        while True:
            t = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM visits WHERE organisation_id = ? AND started_at < ? "
                    "AND person_id IS NULL LIMIT ?",
                    (org_id, cutoff.strftime(SQLITE_TS), visits_per_tx),
                )
            ]
            if ids:
                marks = ",".join("?" * len(ids))
                conn.execute(f"DELETE FROM page_views WHERE visit_id IN ({marks})", ids)
                conn.execute(f"DELETE FROM visits WHERE id IN ({marks})", ids)
            conn.execute("COMMIT")
            if not ids:
                break
            hold = time.perf_counter() - t
            holds.append(hold * 1e3)
            removed += len(ids)
            print(f"  behaviour: visits: {removed:,}", file=sys.stderr, flush=True)
            time.sleep(pause * hold)
    holds.sort()
    print(
        f"sql purge: {removed:,} visits in {len(holds)} transactions of {visits_per_tx} visits, "
        f"pause {pause} x hold; write lock held p50 {fmt(pct(holds, 0.5))} ms, "
        f"p99 {fmt(pct(holds, 0.99))} ms, max {fmt(holds[-1] if holds else None)} ms"
    )
    conn.close()


async def watch_server_purge(
    srv: Server, args: argparse.Namespace, on_start: Callable[[], None]
) -> dict[str, Any]:
    """``--purge-in server``: the server's own daily task (``RetentionTask``, started here with
    ``CONFIDE_RETENTION_INTERVAL_S``) runs the same ``Purger`` inside ``confide serve``. Its
    start and end are read from ``retention_runs`` (polled every 20 ms, read-only)."""
    url = f"file:{srv.workdir / 'bench.db'}?mode=ro"
    t0 = t1 = 0
    state = ""
    with contextlib.closing(sqlite3.connect(url, uri=True)) as c:
        c.execute("PRAGMA busy_timeout=1000")
        deadline = mono() + int((args.server_purge_at + args.max_purge) * 1e9)
        while mono() < deadline:
            row = c.execute("SELECT state FROM retention_runs ORDER BY id LIMIT 1").fetchone()
            if row and not t0:
                t0 = mono()
                on_start()
            if row and row[0] != "running":
                t1, state = mono(), row[0]
                break
            await asyncio.sleep(0.02)
    return {
        "t0": t0,
        "t1": t1 or mono(),
        "rc": state or "still running",
        "interrupted": not t1,
        "stdout": f"(in the server: retention run {state or 'not finished'})",
        "batches": 0,
        "first_batch_s": None,
        "gap_p50_ms": None,
        "gap_p90_ms": None,
        "gap_max_ms": None,
        "cpu_s": None,  # counted in the server's CPU
    }


# --- windows ---------------------------------------------------------------------------------


def window(
    rec: Recorder, name: str, a: tuple[Any, ...], b: tuple[Any, ...], cpu: int
) -> dict[str, Any]:
    """Latency of the messages *sent* in [a, b); CPU from the marks a and b."""
    lo, hi = bisect.bisect_left(rec.sent, a[0]), bisect.bisect_left(rec.sent, b[0])
    lat = sorted(rec.recv[k] - rec.sent[k] for k in range(lo, hi) if rec.recv[k])
    ack = sorted(rec.ack[k] - rec.sent[k] for k in range(lo, hi) if rec.ack[k])
    li, lj = bisect.bisect_left(rec.lag_t, a[0]), bisect.bisect_left(rec.lag_t, b[0])
    lag = sorted(rec.lag[li:lj])
    secs = (b[0] - a[0]) / 1e9
    srv = 100 * (b[1] - a[1]) / secs if secs else None
    busy = busy_pct(a[2], b[2], cpu)
    errs = [code for t, code in rec.errors if a[0] <= t < b[0]]
    return {
        "window": name,
        "secs": round(secs, 1),
        "sent_s": round((hi - lo) / secs, 1) if secs else None,
        "p50": _ms(pct(lat, 0.50)),
        "p95": _ms(pct(lat, 0.95)),
        "p99": _ms(pct(lat, 0.99)),
        "max": _ms(lat[-1] if lat else None),
        "ack_p99": _ms(pct(ack, 0.99)),
        "undeliv": (hi - lo) - len(lat),
        "errors": len(errs),
        "error_codes": sorted(set(errs)),
        "srv_cpu": round(srv, 1) if srv is not None else None,
        "other_cpu": round(max(0.0, busy - srv), 1) if busy is not None and srv else None,
        "lag_p99": _ms(pct(lag, 0.99)),
    }


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v / 1e6, 3)


COLS = [
    ("window", "window"),
    ("secs", "seconds"),
    ("sent_s", "sent msg/s"),
    ("p50", "p50 ms"),
    ("p95", "p95 ms"),
    ("p99", "p99 ms"),
    ("max", "max ms"),
    ("ack_p99", "ack p99 ms"),
    ("undeliv", "undelivered"),
    ("errors", "errors"),
    ("srv_cpu", "server CPU %"),
    ("other_cpu", "other procs on server CPU %"),
    ("lag_p99", "generator tick lag p99 ms"),
]


def series(rec: Recorder, a: int, b: int, step_s: float) -> list[str]:
    """p99/max latency per ``step_s`` of send time, for looking at stalls."""
    out = []
    step = int(step_s * 1e9)
    for s in range(a, b, step):
        lo, hi = bisect.bisect_left(rec.sent, s), bisect.bisect_left(rec.sent, s + step)
        lat = sorted(rec.recv[k] - rec.sent[k] for k in range(lo, hi) if rec.recv[k])
        top = _ms(lat[-1]) if lat else None
        out.append(f"{(s - a) / 1e9:5.0f}s p99={fmt(_ms(pct(lat, 0.99)))} max={fmt(top)}")
    return out


# --- orchestration ---------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    env = common._server_env(None)
    per_visitor = args.rate / args.conversations
    # 4x headroom over the per-visitor rate, as chat_load.py: a server stall must not turn into
    # rate-limit refusals when the backlog arrives
    limits = {
        "CONFIDE_WIDGET_RATE": str(max(10, int(per_visitor * 4))),
        "CONFIDE_WIDGET_BURST": str(max(30, int(per_visitor * 4))),
    }
    if args.purge_in == "server":
        limits["CONFIDE_RETENTION_INTERVAL_S"] = str(args.server_purge_at)
    template, org_id, _keys = common._fixture_template(args.sites, env)
    print(f"seeding {args.visits:,} visits x {args.pages_per_visit} page views ...", flush=True)
    seed_s = seed_behaviour(template, org_id, args.visits, args.pages_per_visit, args.age_days)
    before = count_rows(template)
    size_mb = template.stat().st_size / 1e6
    print(
        f"  seeded in {seed_s:.0f} s: {before[0]:,} visits, {before[1]:,} page views, "
        f"{size_mb:.0f} MB",
        flush=True,
    )
    await wait_quiet(args)
    print(f"  (confide env: {limits}; load average {_load()})", flush=True)
    srv = common.start_confide(args.server_cpu, env_extra=limits, sites=args.sites)
    db = srv.workdir / "bench.db"
    try:
        res = await measure(srv, Recorder(), args)
    finally:
        after = count_rows(db) if db.exists() else (None, None)
        srv.stop(keep=args.keep)
        if args.keep:
            print(f"  (kept {srv.workdir})")
    return {**res, "before_rows": before, "after_rows": after, "seed_s": seed_s, "db_mb": size_mb}


async def measure(srv: Server, rec: Recorder, args: argparse.Namespace) -> dict[str, Any]:
    st = Stats()
    C, S = args.conversations, len(srv.sites)
    t = time.monotonic()
    visitors = await common.gather_limited(
        [open_visitor(srv, st, site=i % S, name=f"Visitor {i}") for i in range(C)], 100
    )
    ops = await common.gather_limited(
        [open_operator(srv, st, site=j % S) for j in range(args.operators)], 100
    )
    by_site = [ops[s::S] for s in range(S)]
    conv_ids = [next(iter(v.conv_ids)) for v in visitors]
    await common.gather_limited(
        [
            accept(by_site[i % S][(i // S) % len(by_site[i % S])], conv_ids[i], False)
            for i in range(C)
        ],
        100,
    )
    print(
        f"  set-up {time.monotonic() - t:.1f} s ({C} conversations, {len(ops)} operator "
        f"sockets, {S} sites)",
        flush=True,
    )
    for v in visitors:
        v.ws.on_message = rec.on_visitor
    for o in ops:
        o.ws.on_message = rec.on_operator

    srvw, me = srv.watch(), ProcWatch(os.getpid(), tree=False)

    def mark() -> tuple[Any, ...]:
        return (mono(), srvw.cpu_seconds(), cpu_busy_jiffies(), me.cpu_seconds())

    gc.collect()
    gc.freeze()
    stop = asyncio.Event()
    driver = asyncio.create_task(drive(rec, visitors, conv_ids, args.rate, stop))
    await asyncio.sleep(args.warmup)
    m0 = mark()
    if args.purge_in == "server":
        marks: list[tuple[Any, ...]] = []

        def started() -> None:
            marks.append(mark())
            print(f"  the server's purge started (load average {_load()})", flush=True)

        purge = await watch_server_purge(srv, args, started)
        m1 = marks[0] if marks else mark()
    else:
        await asyncio.sleep(args.baseline)
        m1 = mark()
        print(f"  purge starts (load average {_load()})", flush=True)
        purge = await run_purge(srv, args)
    m2 = mark()
    print(
        f"  purge ended after {(purge['t1'] - purge['t0']) / 1e9:.1f} s (rc {purge['rc']})",
        flush=True,
    )
    await asyncio.sleep(args.after)
    m3 = mark()
    stop.set()
    await driver
    deadline = mono() + 5_000_000_000
    while mono() < deadline and (0 in rec.recv or 0 in rec.ack):
        await asyncio.sleep(0.05)
    gc.unfreeze()
    await close_all(visitors + ops)
    rows = [
        window(rec, "before", m0, m1, args.server_cpu),
        window(rec, "during purge", m1, m2, args.server_cpu),
        window(rec, "after", m2, m3, args.server_cpu),
    ]
    return {
        "rows": rows,
        "purge": purge,
        "series": series(rec, m1[0], m2[0], args.series) if args.series else [],
        "dups": rec.dups,
        "closed": dict(st.errors),
        "client_cpu": round(100 * (m3[3] - m0[3]) / ((m3[0] - m0[0]) / 1e9), 1),
    }


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def report(res: dict[str, Any], args: argparse.Namespace, command: str) -> None:
    rows, purge = res["rows"], res["purge"]
    print("\n## Operator-receive latency by window (message send time)\n")
    print(md_table(rows, COLS))
    for r in rows:
        if r["error_codes"]:
            print(f"  {r['window']}: {r['errors']} error frames {r['error_codes']}")
    b, d, a = rows
    ratio = lambda x, y: f"{x / y:.2f}x" if x and y else "-"  # noqa: E731
    print(
        f"\np99 during/before = {ratio(d['p99'], b['p99'])}  "
        f"(after/before {ratio(a['p99'], b['p99'])}; max during/before "
        f"{ratio(d['max'], b['max'])})"
    )
    (v0, p0), (v1, p1) = res["before_rows"], res["after_rows"]
    secs = (purge["t1"] - purge["t0"]) / 1e9
    gone = (v0 - v1) + (p0 - p1) if v1 is not None else None
    cpu = "in the server's" if purge["cpu_s"] is None else f"{purge['cpu_s']} s"
    print(
        f"\npurge: {secs:.1f} s wall, CPU {cpu}, exit {purge['rc']}"
        + (" (INTERRUPTED at --max-purge)" if purge["interrupted"] else "")
    )
    if gone is not None:
        print(
            f"  removed {v0 - v1:,} visits + {p0 - p1:,} page views = {gone:,} rows "
            f"({gone / secs:,.0f} rows/s, {(v0 - v1) / secs:,.0f} visits/s); "
            f"left {v1:,} visits, {p1:,} page views"
        )
    print(
        f"  {purge['batches']} progress lines (one per committed batch);"
        f" first after {fmt(purge['first_batch_s'])} s (start-up); between batches p50 "
        f"{fmt(purge['gap_p50_ms'])} ms, p90 {fmt(purge['gap_p90_ms'])} ms, "
        f"max {fmt(purge['gap_max_ms'])} ms"
    )
    print("  report:", *purge["stdout"].splitlines(), sep="\n    ")
    print(
        f"\nfixture: seeded in {res['seed_s']:.0f} s, {res['db_mb']:.0f} MB; client CPU "
        f"{res['client_cpu']} %; duplicates {res['dups']}; closed sockets {res['closed'] or 0}"
    )
    if res["series"]:
        print(f"\nduring the purge, per {args.series} s of send time:")
        print("\n".join("  " + s for s in res["series"]))
    print(f"\nload average at the end: {_load()}")
    print(f"command: {command}")
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(json.dumps({**res, "argv": sys.argv[1:]}, default=str) + "\n")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--visits", type=int, default=250_000, help="old visits to seed")
    p.add_argument("--pages-per-visit", type=int, default=3)
    p.add_argument("--age-days", type=int, default=730, help="how old the seeded rows are")
    p.add_argument("--conversations", type=int, default=100)
    p.add_argument("--operators", type=int, default=0, help="console sockets (default C, max 100)")
    p.add_argument("--sites", type=int, default=0, help="default operators / 10")
    p.add_argument("--rate", type=float, default=500.0, help="offered msg/s for the whole run")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--baseline", type=float, default=15.0, help="seconds before the purge")
    p.add_argument("--after", type=float, default=15.0, help="seconds after the purge")
    p.add_argument(
        "--purge-in",
        choices=("cli", "server", "sql"),
        default="cli",
        help="cli: `confide retention run` in its own process (default); server: the daily "
        "task inside `confide serve`, fired --server-purge-at s after the server starts; "
        "sql: the behaviour rule's SQL in its own process, with --sql-visits/--sql-pause",
    )
    p.add_argument("--sql-visits", type=int, default=2000, help="visits per transaction")
    p.add_argument("--sql-pause", type=float, default=0.0, help="sleep this x the lock hold")
    p.add_argument("--sql-purge", metavar="DB", help=argparse.SUPPRESS)
    p.add_argument("--server-purge-at", type=float, default=40.0)
    p.add_argument("--max-purge", type=float, default=1800.0, help="interrupt the purge after")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument(
        "--purge-cpu", type=int, default=None, help="default: --client-cpu; -1: not pinned"
    )
    p.add_argument(
        "--series",
        type=float,
        default=0.0,
        metavar="S",
        help="also print p99/max per S seconds during the purge",
    )
    p.add_argument("--nice", type=int, default=0, help="as chat_load.py (e.g. -19, needs root)")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="PCT")
    p.add_argument("--quiet-timeout", type=float, default=120.0)
    p.add_argument("--foreign-timeout", type=float, default=1800.0)
    p.add_argument("--keep", action="store_true", help="keep the temp dir (db, server log)")
    p.add_argument("--json", help="append the result (JSON) to this file")
    a = p.parse_args()
    a.operators = a.operators or min(a.conversations, 100)
    a.sites = a.sites or max(1, a.operators // 10)
    if a.conversations % a.sites or a.operators % a.sites:
        a.sites = 1
    if a.purge_cpu is None:
        a.purge_cpu = a.client_cpu
    return a


def main() -> None:
    args = parse_args()
    if args.sql_purge:  # the child process of --purge-in sql
        sql_purge(args.sql_purge, args.sql_visits, args.sql_pause)
        return
    command = shlex.join([os.path.relpath(sys.executable), *sys.argv])
    print(f"command: {command}")
    print(f"load average at start: {_load()} ({os.cpu_count()} CPUs)", flush=True)
    common.raise_nofile()
    common.pin_self(args.client_cpu)
    common.set_nice(args.nice)
    import uvloop

    res = uvloop.run(run(args))
    report(res, args, command)


if __name__ == "__main__":
    main()
