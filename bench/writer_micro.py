"""Micro-benchmark of the message write path alone (no WebSocket): where the per-message CPU goes.

Variants, each in a fresh SQLite file (WAL, synchronous=NORMAL), this process pinned to one CPU,
C concurrent senders each posting messages back to back (closed loop, like a socket that waits
for its ack before reading the next frame):

* ``service``  -- Confide's own path: ``ChatService.post`` -> group-commit ``MessageWriter``
  (SQLAlchemy Core on aiosqlite) -> publish to the in-process broker/hub (no sockets attached);
* ``aiosqlite`` -- the same three statements per batch (SELECT existing, UPDATE..RETURNING,
  multi-row INSERT) + COMMIT issued directly on one aiosqlite connection (no SQLAlchemy);
* ``sqlite3``  -- the same statements with the stdlib ``sqlite3`` module called directly on the
  event-loop thread (no thread hop, no SQLAlchemy), batched the same way;
* ``sqlite3-thread`` -- the same, but the whole batch runs as ONE call on a dedicated writer
  thread (one hop per batch instead of one per statement/fetch).

Reports msg/s, CPU µs per message (process CPU time / messages), mean batch size and the
latency of one ``post`` (submit -> committed).  Example::

    .venv/bin/python bench/writer_micro.py --senders 100 --messages 20000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import md_table, pct, pin_self

TEXT = "x" * 100


async def _fixtures(
    db_url: str, conversations: int, window_ms: float = 0.0
) -> tuple[Any, list[Any]]:
    from confide.chat.service import ConversationRef
    from confide.settings import Settings
    from confide.web.context import AppContext

    ctx = AppContext.build(Settings(database_url=db_url, commit_window_ms=window_ms))
    await ctx.start()
    org = await ctx.accounts.create_organisation("Bench Org")
    site = await ctx.sites.create_site(
        organisation_id=org.id, name="Bench", origins=["http://bench.local"], greeting=None
    )
    refs = []
    for _ in range(conversations):
        actor, view, _token = await ctx.chat.open_conversation(site, None, None)
        refs.append(
            (actor, ConversationRef(view.id, view.organisation_id, view.site_id, view.visitor_id))
        )
    return ctx, refs


async def run_service(db_url: str, senders: int, messages: int, window_ms: float) -> dict[str, Any]:
    ctx, refs = await _fixtures(db_url, senders, window_ms)
    per = messages // senders
    lat: list[float] = []

    async def sender(i: int) -> None:
        actor, ref = refs[i]
        for n in range(per):
            t = time.perf_counter()
            await ctx.chat.post(actor, ref, f"s{i:05d}-{n:08d}", TEXT)
            lat.append(time.perf_counter() - t)

    b0, m0 = ctx.writer.batches, ctx.writer.messages
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(sender(i) for i in range(senders)))
    cpu1, t1 = time.process_time(), time.perf_counter()
    batches = ctx.writer.batches - b0
    done = ctx.writer.messages - m0
    await ctx.stop()
    name = "service" if not window_ms else f"service(window {window_ms:g} ms)"
    return _row(name, senders, done, t1 - t0, cpu1 - cpu0, done / max(1, batches), lat)


_SQL_EXISTING = (
    "SELECT conversation_id, client_id, seq, created_at FROM messages "
    "WHERE (conversation_id, client_id) IN (VALUES {})"
)
_SQL_INSERT = (
    "INSERT INTO messages (organisation_id, site_id, conversation_id, seq, client_id, "
    "author_role, author_id, text, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _batch_sql(batch: list[tuple[str, str, str, str]]) -> tuple[str, list[Any], str, list[Any]]:
    keys = [(c, cid) for (_o, _s, c, cid) in batch]
    ex_sql = _SQL_EXISTING.format(",".join("(?, ?)" for _ in keys))
    ex_args = [x for k in keys for x in k]
    counts: dict[str, int] = {}
    for _o, _s, c, _cid in batch:
        counts[c] = counts.get(c, 0) + 1
    case = " ".join("WHEN ? THEN ?" for _ in counts)
    up_sql = (
        f"UPDATE conversations SET last_seq = last_seq + CASE id {case} END, updated_at = ? "
        f"WHERE id IN ({','.join('?' for _ in counts)}) AND state IN ('waiting', 'active') "
        "RETURNING id, last_seq"
    )
    up_args: list[Any] = [x for c, n in counts.items() for x in (c, n)]
    up_args.append(time.strftime("%Y-%m-%d %H:%M:%S"))
    up_args.extend(counts)
    return ex_sql, ex_args, up_sql, up_args


async def run_raw(db_url: str, senders: int, messages: int, mode: str) -> dict[str, Any]:
    ctx, refs = await _fixtures(db_url, senders)
    await ctx.stop()
    path = db_url.split("///", 1)[1]
    per = messages // senders
    queue: list[tuple[tuple[str, str, str, str], asyncio.Future[int]]] = []
    wake = asyncio.Event()
    lat: list[float] = []
    stats = {"batches": 0, "messages": 0}

    if mode in ("sqlite3", "sqlite3-thread"):
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")

        def sync_commit(batch: list[tuple[str, str, str, str]]) -> None:
            ex_sql, ex_args, up_sql, up_args = _batch_sql(batch)
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(ex_sql, ex_args).fetchall()
            heads = {r[0]: r[1] for r in conn.execute(up_sql, up_args).fetchall()}
            rows = _rows(batch, heads)
            conn.executemany(_SQL_INSERT, rows)
            conn.execute("COMMIT")

        if mode == "sqlite3":

            async def commit(batch: list[tuple[str, str, str, str]]) -> None:
                sync_commit(batch)
        else:
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(1)

            async def commit(batch: list[tuple[str, str, str, str]]) -> None:
                await asyncio.get_running_loop().run_in_executor(pool, sync_commit, batch)
    else:
        import aiosqlite

        aconn = await aiosqlite.connect(path, isolation_level=None)
        await aconn.execute("PRAGMA journal_mode=WAL")
        await aconn.execute("PRAGMA synchronous=NORMAL")
        await aconn.execute("PRAGMA foreign_keys=ON")

        async def commit(batch: list[tuple[str, str, str, str]]) -> None:
            ex_sql, ex_args, up_sql, up_args = _batch_sql(batch)
            await aconn.execute("BEGIN IMMEDIATE")
            async with aconn.execute(ex_sql, ex_args) as cur:
                await cur.fetchall()
            async with aconn.execute(up_sql, up_args) as cur:
                heads = {r[0]: r[1] for r in await cur.fetchall()}
            await aconn.executemany(_SQL_INSERT, _rows(batch, heads))
            await aconn.execute("COMMIT")

    async def writer() -> None:
        nonlocal queue
        while True:
            await wake.wait()
            wake.clear()
            while queue:
                batch, queue = queue[:256], queue[256:]
                await commit([b for b, _ in batch])
                stats["batches"] += 1
                stats["messages"] += len(batch)
                for _, fut in batch:
                    fut.set_result(1)

    task = asyncio.create_task(writer())

    async def sender(i: int) -> None:
        _actor, ref = refs[i]
        loop = asyncio.get_running_loop()
        for n in range(per):
            t = time.perf_counter()
            fut = loop.create_future()
            queue.append(((ref.organisation_id, ref.site_id, ref.id, f"s{i:05d}-{n:08d}"), fut))
            wake.set()
            await fut
            lat.append(time.perf_counter() - t)

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(sender(i) for i in range(senders)))
    cpu1, t1 = time.process_time(), time.perf_counter()
    task.cancel()
    done = stats["messages"]
    return _row(mode, senders, done, t1 - t0, cpu1 - cpu0, done / max(1, stats["batches"]), lat)


def _rows(batch: list[tuple[str, str, str, str]], heads: dict[str, int]) -> list[tuple[Any, ...]]:
    counts: dict[str, int] = {}
    for _o, _s, c, _cid in batch:
        counts[c] = counts.get(c, 0) + 1
    nxt = {c: heads[c] - counts[c] + 1 for c in counts if c in heads}
    now = time.strftime("%Y-%m-%d %H:%M:%S.000000")
    rows = []
    for o, s, c, cid in batch:
        seq = nxt[c]
        nxt[c] = seq + 1
        rows.append((o, s, c, seq, cid, "visitor", None, TEXT, now))
    return rows


def _row(
    variant: str, senders: int, done: int, wall: float, cpu: float, batch: float, lat: list[float]
) -> dict[str, Any]:
    lat.sort()
    return {
        "variant": variant,
        "senders": senders,
        "messages": done,
        "msg_s": round(done / wall),
        "cpu_us_per_msg": round(cpu / max(1, done) * 1e6, 1),
        "cpu_pct": round(100 * cpu / wall, 1),
        "mean_batch": round(batch, 1),
        "post_p50_ms": round((pct(lat, 0.5) or 0) * 1e3, 3),
        "post_p99_ms": round((pct(lat, 0.99) or 0) * 1e3, 3),
    }


def _child(variant: str, senders: int, messages: int, window_ms: float) -> dict[str, Any]:
    import uvloop

    work = Path(tempfile.mkdtemp(prefix="confide-writer-"))
    db_url = f"sqlite+aiosqlite:///{work / 'w.db'}"
    subprocess.run(
        [str(Path(sys.executable).parent / "confide"), "migrate", "--database-url", db_url],
        check=True,
        capture_output=True,
    )
    if variant == "service":
        return uvloop.run(run_service(db_url, senders, messages, window_ms))
    return uvloop.run(run_raw(db_url, senders, messages, variant))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", default="service,aiosqlite,sqlite3,sqlite3-thread")
    p.add_argument("--senders", default="1,10,100")
    p.add_argument("--messages", type=int, default=10000)
    p.add_argument("--cpu", type=int, default=0)
    p.add_argument(
        "--window-ms",
        type=float,
        default=0.0,
        help="service variant: Settings.commit_window_ms (CONFIDE_COMMIT_WINDOW_MS)",
    )
    p.add_argument(
        "--child", nargs=3, metavar=("VARIANT", "SENDERS", "MESSAGES"), help=argparse.SUPPRESS
    )
    a = p.parse_args()
    if a.child:
        import json

        pin_self(a.cpu)
        print(json.dumps(_child(a.child[0], int(a.child[1]), int(a.child[2]), a.window_ms)))
        return
    import json

    rows = []
    for s in [int(x) for x in a.senders.split(",")]:
        for v in a.variants.split(","):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--cpu",
                    str(a.cpu),
                    "--window-ms",
                    str(a.window_ms),
                    "--child",
                    v,
                    str(s),
                    str(a.messages),
                ],
                capture_output=True,
                text=True,
                env={**os.environ, "CONFIDE_LOG_LEVEL": "WARNING"},
            )
            if out.returncode != 0:
                print(f"{v} senders={s} failed:\n{out.stderr[-2000:]}")
                continue
            row = json.loads(out.stdout.strip().splitlines()[-1])
            print(row, flush=True)
            rows.append(row)
    cols = [
        (k, k)
        for k in [
            "variant",
            "senders",
            "messages",
            "msg_s",
            "cpu_us_per_msg",
            "cpu_pct",
            "mean_batch",
            "post_p50_ms",
            "post_p99_ms",
        ]
    ]
    print()
    print(md_table(rows, cols))


if __name__ == "__main__":
    main()
