"""Tracking ingestion load: events/s ingested and durably stored by one ``confide serve``.

Two targets, measured in the same run, each a fresh process pinned to one CPU (``taskset``):

* ``bare``    -- a tiny Starlette app (this file, ``--serve-bare PORT``): ``POST /api/t`` reads
  the body, parses it with ``json.loads`` and returns 204. Served by ``uvicorn.run`` with the
  options ``confide serve`` uses (uvloop + httptools, ``proxy_headers``, no server header),
  without an access log: the Python ceiling for "an HTTP endpoint that accepts a beacon".
* ``confide`` -- ``confide serve`` on a fresh copy of a SQLite fixture database (WAL,
  ``synchronous=NORMAL``) made with the real CLI (``bench/common.py``), default settings
  (access log on, roll-up task every 60 s).

The load generator (this process) pins itself to CPU 1 and runs on uvloop. Each of ``C`` keep-
alive HTTP/1.1 connections behaves like a stream of browsers, closed loop (the next beacon is
sent when the previous answer has arrived): ``POST /api/t`` with ``Content-Type: text/plain``
(what ``navigator.sendBeacon`` sends), ``Origin: http://bench.local``, a browser User-Agent
(from a small pool) and an ``X-Forwarded-For`` address (from a pool of /24s). A visit lasts
``--pages`` beacons (default 5), the first with a referrer; every second visit is by a
returning visitor (same cookie). Visit ids are made as the widget makes them (the time in base
36, then random characters; ``TIME_ORDERED_IDS=0`` for wholly random ones). ``--events E`` puts
E page views in each beacon (1 = as browsers send them; 10 = a batched variant).

Confide answers ``202 {"accepted": n}`` after its transaction committed, so accepted events
are stored; at the end the ``page_views`` rows in the database are counted and must equal the
accepted page views ("stored" column).

Examples::

    .venv/bin/python bench/ingest_load.py                       # events 1 and 10, both targets
    .venv/bin/python bench/ingest_load.py --events 1 --connections 64 --duration 20 --repeat 3
    .venv/bin/python bench/ingest_load.py --targets confide --events 1 --py-spy-gil \\
        --py-spy /tmp/ingest                                        # profile (GIL samples)
    .venv/bin/python bench/ingest_load.py --categorise /tmp/ingest-confide-e1-r0.txt
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import re
import resource
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # bench/common.py: server start-up, pinning, CPU accounting

AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.6 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
]
REFERRERS = [
    None,
    "https://www.google.com/",
    "https://www.google.co.uk/",
    "https://www.bing.com/",
    "https://l.facebook.com/",
    "https://www.autotrader.co.uk/car-details/123",
]
PATHS = ["/", "/used-cars", "/finance", "/contact", "/part-exchange"] + [
    f"/used-cars/{i}" for i in range(400)
]


# --------------------------------------------------------------------------------------------
# the bare target


def serve_bare(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def beacon(request: Request) -> Response:
        data = json.loads(await request.body())
        if not isinstance(data, dict):
            return Response(status_code=400)
        return Response(status_code=204)

    async def ready(_request: Request) -> Response:
        return Response(b"ok")

    app = Starlette(routes=[Route("/api/t", beacon, methods=["POST"]), Route("/readyz", ready)])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        server_header=False,
    )


def start_bare(cpu: int | None) -> common.Server:
    work = Path(tempfile.mkdtemp(prefix="confide-bench-ingest-bare-"))
    port = common.free_port()
    log = work / "server.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve-bare", str(port)]
    proc = common._spawn(cmd, cpu, log, common._server_env(None))
    srv = common.Server("bare", "127.0.0.1", port, proc, work, log)
    try:
        common.wait_port("127.0.0.1", port, 20, proc)
    except Exception:
        srv.stop()
        raise
    return srv


# --------------------------------------------------------------------------------------------
# a lean keep-alive HTTP/1.1 client (~30 µs of client CPU per request; httpx: several times that)

_CL = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.I)


class Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is None:
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end])
        m = _CL.search(head)
        length = int(m.group(1)) if m else 0
        if len(self.buf) < end + 4 + length:
            return
        body = bytes(self.buf[end + 4 : end + 4 + length])
        del self.buf[: end + 4 + length]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((int(head[9:12]), body))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass
class Stats:
    t_start: float = 0.0
    t_end: float = 0.0
    requests: int = 0
    events: int = 0  # accepted (confide) or sent and answered 204 (bare)
    pageviews_accepted_total: int = 0  # over the whole run incl. warm-up and drain
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)


def visit_id() -> str:
    """As the widget makes them (app.js ``visitId``): the start time in base 36, then 14 random
    characters; ``TIME_ORDERED_IDS=0`` gives wholly random ids (the earlier widget's)."""
    if os.environ.get("TIME_ORDERED_IDS") == "0":
        return secrets.token_urlsafe(16)
    return _base36(int(time.time() * 1000)).rjust(8, "0") + secrets.token_urlsafe(11)[:14]


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"


class Visitor:
    """One connection's stream of browsers: visits of ``pages`` beacons; every second visit is by
    a returning visitor."""

    def __init__(self, rng: random.Random, pages: int) -> None:
        self.rng = rng
        self.pages = pages
        self.n = 0
        self.cookie = secrets.token_urlsafe(16)
        self.visit = visit_id()
        self.agent = rng.choice(AGENTS)
        self.ip = f"{rng.choice(FIRST_OCTETS)}.{rng.randrange(256)}.{rng.randrange(256)}.7"

    def next_beacon(self, site: str, events: int) -> tuple[dict[str, Any], str, str]:
        if self.n and self.n % self.pages == 0:  # a new visit
            self.visit = visit_id()
            if (self.n // self.pages) % 2 == 0:  # and every other time, a new browser
                self.cookie = secrets.token_urlsafe(16)
                self.agent = self.rng.choice(AGENTS)
                self.ip = (
                    f"{self.rng.choice(FIRST_OCTETS)}.{self.rng.randrange(256)}."
                    f"{self.rng.randrange(256)}.7"
                )
        first = self.n % self.pages == 0
        self.n += 1
        ts = int(time.time() * 1000)
        evs = []
        for i in range(events):
            ev: dict[str, Any] = {
                "type": "pageview",
                "url": self.rng.choice(PATHS) + ("?utm_source=news&email=x@y.z" if i == 3 else ""),
                "title": "Used cars for sale",
                "ts": ts,
            }
            if first and i == 0:
                ev["referrer"] = self.rng.choice(REFERRERS)
            evs.append(ev)
        body = {
            "site": site,
            "visit": self.visit,
            "visitor": self.cookie,
            "consent": "granted",
            "events": evs,
        }
        return body, self.agent, self.ip


FIRST_OCTETS = [2, 5, 31, 37, 46, 51, 62, 77, 78, 80, 81, 82, 86, 90, 92, 94, 109, 151, 176, 212]


async def run_load(
    srv: common.Server,
    *,
    site: str,
    connections: int,
    events: int,
    pages: int,
    warmup: float,
    duration: float,
    expect_status: int,
    seed: int,
) -> Stats:
    loop = asyncio.get_running_loop()
    stats = Stats()
    host = f"{srv.host}:{srv.port}".encode()
    conns: list[Conn] = []
    for _ in range(connections):
        _t, proto = await loop.create_connection(Conn, srv.host, srv.port)
        conns.append(proto)
    t0 = time.perf_counter()
    stats.t_start = t0 + warmup
    stats.t_end = stats.t_start + duration
    stop_at = stats.t_end
    dumps = json.dumps

    async def worker(i: int, conn: Conn) -> None:
        visitor = Visitor(random.Random(seed * 100_003 + i), pages)
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                return
            body, agent, ip = visitor.next_beacon(site, events)
            payload = dumps(body, separators=(",", ":")).encode()
            req = b"".join(
                [
                    b"POST /api/t HTTP/1.1\r\nHost: ",
                    host,
                    b"\r\nOrigin: http://bench.local\r\nContent-Type: text/plain;charset=UTF-8"
                    b"\r\nUser-Agent: ",
                    agent.encode(),
                    b"\r\nX-Forwarded-For: ",
                    ip.encode(),
                    b"\r\nContent-Length: ",
                    str(len(payload)).encode(),
                    b"\r\n\r\n",
                    payload,
                ]
            )
            sent = time.perf_counter()
            try:
                status, resp = await conn.request(req)
            except ConnectionError:
                stats.errors["closed"] = stats.errors.get("closed", 0) + 1
                return
            done = time.perf_counter()
            accepted = events
            if status != expect_status:
                key = str(status)
                stats.errors[key] = stats.errors.get(key, 0) + 1
                accepted = 0
            elif expect_status == 202:
                accepted = json.loads(resp)["accepted"]
                if accepted != events:
                    stats.errors["not-accepted"] = stats.errors.get("not-accepted", 0) + 1
            stats.pageviews_accepted_total += accepted
            if stats.t_start <= done < stats.t_end:
                stats.requests += 1
                stats.events += accepted
                stats.latencies.append(done - sent)

    await asyncio.gather(*(worker(i, c) for i, c in enumerate(conns)))
    for c in conns:
        c.close()
    await asyncio.gather(*(asyncio.wait_for(c.closed, 5) for c in conns), return_exceptions=True)
    return stats


# --------------------------------------------------------------------------------------------
# orchestration


def count_page_views(db_url: str) -> int:
    path = db_url.split("///", 1)[1]
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as c:
        return int(c.execute("SELECT count(*) FROM page_views").fetchone()[0])


def start_py_spy(
    pid: int, out: Path, seconds: float, gil: bool = False
) -> subprocess.Popen[bytes] | None:
    exe = shutil.which("py-spy", path=str(common.VENV_BIN)) or shutil.which("py-spy")
    if not exe:
        print("py-spy not found: pip install py-spy into the venv", file=sys.stderr)
        return None
    cmd = [exe, "record", "--pid", str(pid), "--threads", "--format", "raw"]
    # --gil: only the thread holding the GIL, whole stacks (pauses the process per sample, so
    # the server runs slower); otherwise non-blocking sampling at 200 Hz (partial stacks).
    cmd += ["--rate", "100", "--gil"] if gil else ["--rate", "200", "--nonblocking"]
    cmd += ["--duration", str(int(seconds)), "--output", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def one_point(target: str, events: int, args: argparse.Namespace, rep: int) -> dict[str, Any]:
    srv = start_bare(args.server_cpu) if target == "bare" else common.start_confide(args.server_cpu)
    site = "bare" if target == "bare" else srv.sites[0][0]
    spy = None
    try:
        watch = srv.watch()
        if args.py_spy:
            out = Path(f"{args.py_spy}-{target}-e{events}-r{rep}.txt")
            spy = start_py_spy(srv.proc.pid, out, args.warmup + args.duration, args.py_spy_gil)

        async def go() -> tuple[Stats, float, float, dict[int, tuple[int, int]], float, float]:
            # CPU accounting over the measured window only
            task = asyncio.create_task(
                run_load(
                    srv,
                    site=site,
                    connections=args.connections,
                    events=events,
                    pages=args.pages,
                    warmup=args.warmup,
                    duration=args.duration,
                    expect_status=204 if target == "bare" else 202,
                    seed=rep,
                )
            )
            await asyncio.sleep(args.warmup)
            cpu0, jiffies0 = watch.cpu_seconds(), common.cpu_busy_jiffies()
            main0 = main_thread_seconds(srv.proc.pid)
            self0 = resource.getrusage(resource.RUSAGE_SELF)
            await asyncio.sleep(args.duration)
            cpu1, jiffies1 = watch.cpu_seconds(), common.cpu_busy_jiffies()
            main1 = main_thread_seconds(srv.proc.pid)
            self1 = resource.getrusage(resource.RUSAGE_SELF)
            stats = await task
            client = (self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime)
            other = common.busy_pct(jiffies0, jiffies1, args.server_cpu or 0)
            return stats, cpu1 - cpu0, client, jiffies1, other or 0.0, main1 - main0

        stats, server_cpu, client_cpu, _j, cpu0_busy, main_cpu = run_async(go())
        stored = None
        if target == "confide":
            time.sleep(0.2)
            stored = count_page_views(srv.extra["db_url"])
        lat = sorted(stats.latencies)
        ev_s = stats.events / args.duration
        server_pct = 100 * server_cpu / args.duration
        row = {
            "target": target,
            "events/req": events,
            "conns": args.connections,
            "req/s": stats.requests / args.duration,
            "events/s": ev_s,
            "p50 ms": (common.pct(lat, 0.50) or 0) * 1000,
            "p99 ms": (common.pct(lat, 0.99) or 0) * 1000,
            "server CPU %": server_pct,
            "CPU µs/event": (server_cpu * 1e6 / stats.events) if stats.events else None,
            "main µs/event": (main_cpu * 1e6 / stats.events) if stats.events else None,
            "client CPU %": 100 * client_cpu / args.duration,
            "other on CPU0 %": max(0.0, cpu0_busy - server_pct),
            "errors": sum(stats.errors.values()),
            "stored": (
                "-"
                if stored is None
                else ("ok" if stored == stats.pageviews_accepted_total else "MISMATCH")
            ),
            "_stored_rows": stored,
            "_accepted_total": stats.pageviews_accepted_total,
            "_errors": stats.errors,
            "_rep": rep,
        }
        if stats.errors:
            print(f"  errors: {stats.errors}\n{srv.log_tail(15)}", file=sys.stderr)
        return row
    finally:
        if spy is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(timeout=args.warmup + args.duration + 10)
        srv.stop(keep=args.keep)


def main_thread_seconds(pid: int) -> float:
    """CPU seconds of the server's main thread (the event loop: HTTP, request handling). The
    rest of the process's CPU is its other threads: Confide's tracking writer (a sqlite3
    thread), the WAL checkpointer and aiosqlite's connection threads."""
    with contextlib.suppress(psutil.Error):
        for t in psutil.Process(pid).threads():
            if t.id == pid:
                return float(t.user_time + t.system_time)
    return 0.0


def run_async(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def wait_quiet(limit: float, timeout: float) -> float:
    """Wait (up to ``timeout`` s) while an older benchmark of someone else runs (two on the same
    two CPUs ruin each other: ``common.foreign_benchmarks``), then until the 1-minute load
    average is below ``limit``."""
    deadline = time.monotonic() + timeout
    while (others := common.foreign_benchmarks()) and time.monotonic() < deadline:
        print(f"  (waiting for another benchmark to finish: {others[0]})", flush=True)
        time.sleep(15)
    while True:
        load = os.getloadavg()[0]
        if load < limit or time.monotonic() > deadline:
            return load
        time.sleep(5)


#: Profile categories, matched from the leaf frame upwards (the first match names the sample).
CATEGORIES = [
    ("access log (logging)", r"logging/__init__|confide/logs\.py"),
    ("live-visitor publish", r"realtime/|live_row"),
    ("writer: SQLAlchemy + aiosqlite (event loop)", r"sqlalchemy/|aiosqlite/"),
    ("writer: sqlite3 statements (writer thread)", r"tracking/sqlite_ingest\.py"),
    ("writer: batch building", r"tracking/writer\.py"),
    ("geo / UA / URL", r"tracking/(geo|useragent|urls)\.py|ipaddress\.py|ua_parser"),
    ("beacon parsing + route", r"tracking/events\.py|routes/tracking\.py|beacon_asgi\.py|orjson"),
    ("tracking service", r"tracking/service\.py"),
    ("site lookup", r"sites/service\.py"),
    ("security headers (CSP nonce)", r"web/security\.py|secrets\.py|random\.py"),
    ("anyio (thread pool for sync dependencies)", r"anyio/"),
    ("FastAPI / Starlette", r"fastapi/|starlette/"),
    ("uvicorn HTTP + proxy headers", r"uvicorn/"),
]


def categorise(path: str) -> None:
    """Share of samples per category (for a ``--py-spy-gil`` profile: of GIL-holding time)."""
    counts: dict[str, int] = {}
    total = 0
    with open(path) as fh:
        for line in fh:
            stack, _, n = line.rstrip().rpartition(" ")
            if not stack:
                continue
            frames = stack.split(";")
            name = "event loop / other"
            if "_connection_worker_thread" in stack:
                name = "SQLite (aiosqlite threads)"
            else:
                for frame in reversed(frames[1:]):
                    hit = next((c for c, rx in CATEGORIES if re.search(rx, frame)), None)
                    if hit:
                        name = hit
                        break
            counts[name] = counts.get(name, 0) + int(n)
            total += int(n)
    print("| category | share of samples |\n|---|---|")
    for name, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {100 * n / total:.1f} % |")
    print(f"\n{total} samples")


COLS = [
    ("target", "target"),
    ("events/req", "events/req"),
    ("conns", "conns"),
    ("req/s", "req/s"),
    ("events/s", "events/s"),
    ("p50 ms", "p50 ms"),
    ("p99 ms", "p99 ms"),
    ("server CPU %", "server CPU %"),
    ("CPU µs/event", "server CPU µs/event"),
    ("main µs/event", "of which main thread µs/event"),
    ("client CPU %", "client CPU %"),
    ("other on CPU0 %", "other procs on CPU0 %"),
    ("errors", "errors"),
    ("stored", "stored = accepted"),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    p.add_argument("--targets", default="bare,confide")
    p.add_argument("--events", default="1,10", help="events per request (comma list)")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--pages", type=int, default=5, help="beacons per visit")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--repeat", type=int, default=1, help="runs per point; the best is kept")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--wait-quiet", type=float, default=0.0, help="wait for loadavg below this")
    p.add_argument("--py-spy", default="", help="profile each target into PREFIX-TARGET-eE-rR.txt")
    p.add_argument("--py-spy-gil", action="store_true", help="profile with py-spy --gil")
    p.add_argument("--categorise", default="", help="summarise a py-spy raw profile and exit")
    p.add_argument("--json", default="", help="append result rows (JSON lines) to this file")
    p.add_argument("--keep", action="store_true", help="keep the servers' temp dirs")
    p.add_argument(
        "--nice",
        type=int,
        default=None,
        help="run the servers and this generator at this nice value (e.g. -19, root; start "
        "with setsid: see common.set_nice)",
    )
    args = p.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return
    if args.categorise:
        categorise(args.categorise)
        return
    common.pin_self(args.client_cpu)
    common.raise_nofile()
    if args.nice is not None:
        common.set_nice(args.nice)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    event_counts = [int(e) for e in args.events.split(",")]
    print(
        f"# ingest_load: {args.connections} connections, {args.pages} beacons/visit, "
        f"{args.warmup:g}+{args.duration:g} s, server CPU {args.server_cpu}, client CPU "
        f"{args.client_cpu}, loadavg {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    for events, rep, target in itertools.product(event_counts, range(args.repeat), targets):
        if args.wait_quiet:
            load = wait_quiet(args.wait_quiet, 300)
            print(f"  (loadavg {load:.2f})", flush=True)
        row = one_point(target, events, args, rep)
        row["loadavg"] = os.getloadavg()[0]
        print(
            f"  {target:8s} e={events:<3d} rep {rep}: {row['events/s']:9.0f} events/s  "
            f"p50 {row['p50 ms']:.1f} ms  p99 {row['p99 ms']:.1f} ms  "
            f"server {row['server CPU %']:.0f}% = {row['CPU µs/event'] or 0:.0f} µs/event "
            f"(main thread {row['main µs/event'] or 0:.0f})  client {row['client CPU %']:.0f}%  "
            f"other {row['other on CPU0 %']:.0f}%  stored {row['stored']}",
            flush=True,
        )
        rows.append(row)
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(json.dumps(row, default=str) + "\n")
    best: dict[tuple[str, int], dict[str, Any]] = {}
    for r in rows:
        key = (r["target"], r["events/req"])
        if key not in best or r["events/s"] > best[key]["events/s"]:
            best[key] = r
    print()
    print(common.md_table(list(best.values()), COLS))
    print()
    print("| events/req | confide events/s | bare events/s | confide / bare | target ≥ 8,000 |")
    print("|---|---|---|---|---|")
    for events in event_counts:
        c, b = best.get(("confide", events)), best.get(("bare", events))
        if c is None:
            continue
        ratio = f"{100 * c['events/s'] / b['events/s']:.1f} %" if b else "-"
        bare = f"{b['events/s']:.0f}" if b else "-"
        ok = "yes" if c["events/s"] >= 8000 else "no"
        print(f"| {events} | {c['events/s']:.0f} | {bare} | {ratio} | {ok} |")


if __name__ == "__main__":
    main()
