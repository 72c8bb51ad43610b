"""Idle connections: server memory per held WebSocket, then a small latency probe under that load.

For each target (``bare`` relay and ``confide``), on a fresh server pinned to CPU 0:

1. measure the server's RSS (psutil, whole process tree) before any connection;
2. open K connections, ``--concurrency`` handshakes at a time:
   * ``--mix visitors`` (default): K widget sockets, each ``hello`` + ``open`` (K conversations,
     all waiting on one site, no agent connected);
   * ``--mix half``: K/2 such visitors + K/2 console sockets (``hello`` only) of an operator on a
     *second* site, so their queues are empty: the agent sockets cost their own memory without
     the O(agents x conversations) queue traffic a single site with 5,000 agents would cause;
3. hold them ``--hold`` seconds (uvicorn's 20 s keep-alive pings run; this client answers them)
   and sample the server's RSS; KB/conn = (RSS held - RSS before) / K;
4. probe: one extra operator socket accepts ``--probe-conversations`` of the held conversations,
   and their visitors send ``--probe-rate`` msg/s for ``--probe-seconds`` (latency measured exactly
   as in chat_load.py: operator receive - send, plus acks).

Target: <= 40 KB per idle connection at 10,000 connections.

Example::

    .venv/bin/python bench/idle_connections.py --connections 10000 --hold 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chat_load import (
    Conn,
    Stats,
    accept,
    close_all,
    drive,
    open_operator,
    open_visitor,
    reset_counters,
    summarize,
)
from common import (
    ProcWatch,
    Server,
    fmt,
    foreign_benchmarks,
    gather_limited,
    md_table,
    pin_self,
    raise_nofile,
    set_nice,
    start_bare,
    start_confide,
)


async def _open_conv(v: Conn) -> None:
    from chat_load import _is, request_retry

    r = await request_retry(v, {"type": "open"}, _is("conversation"), "visitor open")
    v.conv_ids.add(r["conversation"]["id"])


async def _opened(coros: list[Any], limit: int) -> tuple[list[Conn], list[str]]:
    """Open connections; failures are counted, not fatal."""

    async def one(c: Any) -> Conn | str:
        try:
            return await c
        except Exception as e:
            return f"{type(e).__name__}: {e}"[:200]

    res = await gather_limited([one(c) for c in coros], limit)
    return [r for r in res if isinstance(r, Conn)], [r for r in res if isinstance(r, str)]


async def run_target(name: str, args: argparse.Namespace) -> dict[str, Any]:
    K = args.connections
    t0 = time.monotonic()
    while (others := foreign_benchmarks()) and time.monotonic() - t0 < args.foreign_timeout:
        print(f"  (waiting for another benchmark to finish: {others[0]})", flush=True)
        await asyncio.sleep(15.0)
    sites = 2 if args.mix == "half" else 1
    if name == "bare":
        srv: Server = start_bare(args.server_cpu, ws_impl=args.bare_ws, extra_args=args.bare_arg)
    else:
        env = dict(kv.partition("=")[::2] for kv in args.server_env)
        srv = start_confide(
            args.server_cpu,
            env_extra=env,
            sites=sites,
            serve_args=args.serve_arg,
            traced=args.traced,
        )
    try:
        return await _run(srv, name, K, args)
    finally:
        srv.stop(keep=args.keep)


async def _run(srv: Server, name: str, K: int, args: argparse.Namespace) -> dict[str, Any]:
    watch = srv.watch()
    me = ProcWatch(os.getpid(), tree=False)
    await asyncio.sleep(1.0)  # let the server settle after start-up
    rss_before = watch.rss_mb()
    traced = args.traced and name == "confide"
    if traced:
        os.kill(srv.proc.pid, signal.SIGUSR2)  # tracemalloc baseline
        await asyncio.sleep(1.0)
    st = Stats()
    n_vis = K if args.mix in ("visitors", "hello") else K // 2
    n_con = K - n_vis
    t = time.monotonic()
    visitors, errs_v = await _opened(
        [
            open_visitor(srv, st, site=0, name=None, want_open=args.mix != "hello")
            for _ in range(n_vis)
        ],
        args.concurrency,
    )
    t_vis = time.monotonic() - t
    rss_vis = watch.rss_mb()
    consoles, errs_c = await _opened(
        [open_operator(srv, st, site=1 if name == "confide" else 0) for _ in range(n_con)],
        args.concurrency,
    )
    t_open = time.monotonic() - t
    opened = len(visitors) + len(consoles)
    print(
        f"  {name}: opened {opened}/{K} in {t_open:.1f}s (visitors {len(visitors)} in {t_vis:.1f}s)"
        f"; errors {len(errs_v) + len(errs_c)} {(errs_v + errs_c)[:2]}",
        flush=True,
    )
    rss_open = watch.rss_mb()
    samples = [rss_open]
    st.errors.clear()  # setup errors are reported via setup_retries / open errors
    t_hold = time.monotonic()
    while time.monotonic() - t_hold < args.hold:
        await asyncio.sleep(min(2.0, args.hold))
        samples.append(watch.rss_mb())
    rss_held = samples[-1]
    if traced:
        out = srv.workdir / "tracemalloc.txt"
        os.kill(srv.proc.pid, signal.SIGUSR1)
        for _ in range(600):
            await asyncio.sleep(0.5)
            if out.exists():
                await asyncio.sleep(1.0)
                break
        if out.exists():
            text = out.read_text()
            keep = Path(args.traced_out or f"/tmp/tracemalloc-{name}-{K}.txt")
            keep.write_text(text)
            print(f"  tracemalloc growth while holding {K} connections -> {keep}")
            print("\n".join(text.splitlines()[:30]))
    still_open = sum(1 for c in visitors + consoles if c.ws.open)
    closed_codes = dict(st.errors)

    # probe: one operator accepts P held conversations; their visitors send
    reset_counters(st)
    st.errors.clear()
    P = min(args.probe_conversations, len(visitors))
    if args.mix == "hello" and P:  # these visitors have no conversation yet: open P now
        await gather_limited([_open_conv(v) for v in visitors[:P]], 20)
    probe_row: dict[str, Any] = {}
    if P:
        op = await open_operator(srv, st, site=0)
        vis = visitors[:P]
        conv_ids = [next(iter(v.conv_ids)) for v in vis]
        await gather_limited([accept(op, cid, False) for cid in conv_ids], 20)
        reset_counters(st)
        marks = await drive(st, srv, vis, conv_ids, args.probe_rate, 0.0, args.probe_seconds, 5.0)
        probe_row = summarize(st, marks, args.probe_seconds)
        consoles.append(op)
    rss_end = watch.rss_mb()
    client_rss = me.rss_mb()
    await close_all(visitors + consoles)
    await asyncio.sleep(3.0)
    rss_closed = watch.rss_mb()
    row = {
        "target": name,
        "mix": args.mix,
        "requested": K,
        "opened": opened,
        "still_open": still_open,
        "hold_s": args.hold,
        "open_s": round(t_open, 1),
        "rss_before": round(rss_before, 1),
        "rss_visitors": round(rss_vis, 1),
        "rss_held": round(rss_held, 1),
        "rss_max_hold": round(max(samples), 1),
        "rss_after_probe": round(rss_end, 1),
        "rss_after_close": round(rss_closed, 1),
        "kb_per_conn": round((rss_held - rss_before) * 1000 / max(1, opened), 1),
        "kb_per_visitor": round((rss_vis - rss_before) * 1000 / max(1, len(visitors)), 1),
        "kb_per_console": (
            round((rss_open - rss_vis) * 1000 / len(consoles[:n_con]), 1)
            if n_con and consoles
            else None
        ),
        "probe": _probe_text(probe_row),
        "probe_ack_p99": probe_row.get("ack_p99"),
        "probe_errors": probe_row.get("error_codes"),
        "client_rss": round(client_rss, 1),
        "errors": len(errs_v) + len(errs_c),
        "setup_retries": dict(st.setup_retries),
        "closed_during_hold": closed_codes,
        "error_samples": (errs_v + errs_c)[:3],
    }
    print(f"  {name}: {json.dumps(row)}", flush=True)
    return row


def _probe_text(r: dict[str, Any]) -> str:
    if not r:
        return "-"
    got = r.get("sent_total", 0) - r.get("undelivered", 0)
    return (
        f"{r.get('sent_total')}/{got}, p50 {fmt(r.get('p50'))}, p99 {fmt(r.get('p99'))}, "
        f"max {fmt(r.get('max'))}"
    )


COLS = [
    ("target", "target"),
    ("mix", "mix"),
    ("requested", "requested"),
    ("opened", "open"),
    ("still_open", "still open after hold"),
    ("hold_s", "hold s"),
    ("open_s", "open s"),
    ("rss_before", "RSS before MB"),
    ("rss_held", "RSS held MB"),
    ("rss_after_close", "RSS after closing MB"),
    ("kb_per_conn", "KB/conn"),
    ("kb_per_visitor", "KB/visitor"),
    ("kb_per_console", "KB/console"),
    ("probe", "probe sent/received, ms"),
    ("probe_ack_p99", "probe ack p99 ms"),
    ("client_rss", "client RSS MB"),
    ("errors", "open errors"),
]


async def main_async(args: argparse.Namespace) -> None:
    rows = []
    for K in args.connections_list:
        args.connections = K
        for name in args.targets:
            try:
                rows.append(await run_target(name, args))
            except Exception as e:
                print(f"  !! {name} K={K}: {e!r}", flush=True)
    print("\n## Idle connections\n")
    print(md_table(rows, COLS))
    for r in rows:
        verdict = "PASS" if r["kb_per_conn"] <= args.target_kb else "FAIL"
        print(
            f"\n{r['target']} K={r['requested']}: {r['kb_per_conn']} KB/conn "
            f"(target ≤ {args.target_kb} KB): {verdict}"
        )
    b = {r["requested"]: r for r in rows if r["target"] == "bare"}
    for r in rows:
        if r["target"] == "confide" and r["requested"] in b:
            print(
                f"confide/bare KB/conn at K={r['requested']}: "
                f"{r['kb_per_conn'] / max(0.1, b[r['requested']]['kb_per_conn']):.2f}x"
            )
    if args.json:
        with open(args.json, "a") as fh:
            for r in rows:
                fh.write(json.dumps({**r, "argv": sys.argv[1:]}) + "\n")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Idle-connection memory benchmark (bench/README.md)")
    p.add_argument("--targets", default="bare,confide", type=lambda s: s.split(","))
    p.add_argument(
        "--connections", default="10000", help="K idle connections; a comma list runs each in turn"
    )
    p.add_argument(
        "--mix",
        choices=["visitors", "half", "hello"],
        default="visitors",
        help="visitors: widget sockets with an open conversation each; half: K/2 of "
        "those + K/2 console sockets; hello: widget sockets after hello only (a page "
        "view with the widget loaded, no chat started)",
    )
    p.add_argument("--hold", type=float, default=20.0)
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--probe-rate", type=float, default=200.0)
    p.add_argument("--probe-seconds", type=float, default=3.0)
    p.add_argument("--probe-conversations", type=int, default=100)
    p.add_argument("--target-kb", type=float, default=40.0)
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--server-env", action="append", default=[])
    p.add_argument("--serve-arg", action="append", default=[])
    p.add_argument("--bare-ws", default="auto")
    p.add_argument(
        "--bare-arg",
        action="append",
        default=[],
        help="extra relay_bare.py argument, e.g. --bare-arg=--sender-task",
    )
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the server and this generator at this nice value (e.g. -19, needs root) "
        "to shield them from other work on a shared machine",
    )
    p.add_argument(
        "--foreign-timeout",
        type=float,
        default=1800.0,
        help="wait up to this long while another bench/*.py benchmark runs (0: don't)",
    )
    p.add_argument("--keep", action="store_true")
    p.add_argument(
        "--traced",
        action="store_true",
        help="confide under tracemalloc (bench/serve_traced.py): where the heap goes",
    )
    p.add_argument("--traced-out", help="file for the tracemalloc report")
    p.add_argument("--json")
    a = p.parse_args()
    a.connections_list = [int(x) for x in str(a.connections).split(",") if x]
    return a


def main() -> None:
    args = parse_args()
    n = raise_nofile()
    need = max(args.connections_list) + 200
    if n < need:
        print(f"warning: RLIMIT_NOFILE is {n}, below the {need} this run needs", file=sys.stderr)
    pin_self(args.client_cpu)
    set_nice(args.nice)
    import uvloop

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(main_async(args))


if __name__ == "__main__":
    main()
