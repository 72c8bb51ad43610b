"""Shared plumbing for the Confide benchmarks: servers under test, fixtures, clients, stats.

Two targets speak the same subset of protocol v1 (docs/protocol.md):

* ``bare``    -- ``bench/relay_bare.py`` (in-memory Starlette relay, the Python ceiling);
* ``confide`` -- ``confide serve`` on a fresh SQLite (WAL) database created for the run with
  ``confide migrate`` / ``org create`` / ``site create`` / ``user create``.

Each is started fresh, pinned to one CPU (``taskset -c``), and watched with psutil.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_BIN = Path(sys.executable).parent
VISITOR_ORIGIN = "http://bench.local"
OP_PASSWORD = "bench-password-0123456789"


def raise_nofile() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pin_self(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {cpu})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {host}:{port} within {timeout}s")


# --------------------------------------------------------------------------------------------
# process accounting


class ProcWatch:
    """CPU seconds and RSS of a process tree (a server may fork workers or helpers)."""

    def __init__(self, pid: int, tree: bool = True) -> None:
        self.proc = psutil.Process(pid)
        self.tree = tree

    def _tree(self) -> list[psutil.Process]:
        procs = [self.proc]
        if not self.tree:
            return procs
        with contextlib.suppress(psutil.Error):
            procs += self.proc.children(recursive=True)
        return procs

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in self._tree():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def rss_mb(self) -> float:
        total = 0
        for p in self._tree():
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total / 1e6


def cpu_busy_jiffies() -> dict[int, tuple[int, int]]:
    """Per CPU: (busy, total) jiffies from /proc/stat (busy excludes idle and iowait)."""
    out: dict[int, tuple[int, int]] = {}
    try:
        with open("/proc/stat") as fh:
            for line in fh:
                if line.startswith("cpu") and line[3].isdigit():
                    parts = line.split()
                    vals = [int(x) for x in parts[1:]]
                    total = sum(vals[:8])
                    out[int(parts[0][3:])] = (total - vals[3] - vals[4], total)
    except OSError:
        pass
    return out


def busy_pct(
    a: dict[int, tuple[int, int]], b: dict[int, tuple[int, int]], cpu: int
) -> float | None:
    if cpu not in a or cpu not in b:
        return None
    busy = b[cpu][0] - a[cpu][0]
    total = b[cpu][1] - a[cpu][1]
    return 100.0 * busy / total if total else None


def foreign_benchmarks() -> list[str]:
    """Other benchmark processes (``python …/bench/*.py`` outside this process tree) that
    started *before* this one: two benchmarks sharing the two CPUs ruin both, and waiting only
    for older ones means two such waiters never wait for each other."""
    me = psutil.Process()
    mine = {me.pid, *(p.pid for p in me.children(recursive=True))}
    with contextlib.suppress(psutil.Error):
        mine.update(p.pid for p in me.parents())
    born = me.create_time()
    found = []
    for p in psutil.process_iter(["pid", "cmdline", "create_time"]):
        cmd = " ".join(p.info.get("cmdline") or [])
        if p.info["pid"] in mine or "python" not in cmd or p.info["create_time"] >= born:
            continue
        if re.search(r"(^|[\s/])bench/[\w-]+\.py", cmd):
            found.append(f"{p.info['pid']}: {cmd[:100]}")
    return found


# --------------------------------------------------------------------------------------------
# targets


@dataclass
class Server:
    name: str
    host: str
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path
    sites: list[tuple[str, str | None]] = field(default_factory=lambda: [("bare", None)])
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def base_http(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def own_origin(self) -> str:
        return self.base_http

    def site(self, i: int) -> tuple[str, str | None]:
        """(site key, operator session cookie) of site ``i`` (wraps around)."""
        return self.sites[i % len(self.sites)]

    def widget_url(self, site: int = 0) -> str:
        return f"ws://{self.host}:{self.port}/ws/widget?v=1&site={self.site(site)[0]}"

    def console_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws/console?v=1"

    def console_headers(self, site: int = 0) -> dict[str, str]:
        cookie = self.site(site)[1]
        return {"Cookie": cookie} if cookie else {}

    def watch(self) -> ProcWatch:
        return ProcWatch(self.proc.pid)

    def stop(self, keep: bool = False) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if not keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


#: Scheduling priority (nice) for the servers under test; see set_nice().
NICE = 0


def set_nice(n: int) -> None:
    """Run this process (and the servers it starts from now on) at nice ``n`` (< 0 needs root).

    On a machine shared with other work, nice -19 gives the measured processes ~98 % of a CPU
    against nice-0 neighbours (CFS weights) instead of an even share; the neighbours still run.
    Rows report the other processes' CPU on the server's core either way.
    Run each benchmark in its own session (``setsid``) so that the autogroup weight set here
    applies to it alone."""
    global NICE
    NICE = n
    if n:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, n)
        # With kernel.sched_autogroup_enabled=1, CPU is first shared between sessions
        # (autogroups) and nice only counts inside one; give this session's autogroup (the
        # generator and the servers it spawns) the same weight. Other sessions are untouched.
        with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as fh:
            fh.write(str(n))


def _spawn(
    cmd: list[str], cpu: int | None, log: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    if NICE and shutil.which("nice"):  # nice execs too: the pid stays the server's
        cmd = ["nice", "-n", str(NICE), *cmd]
    fh = log.open("wb")
    # taskset execs the command, so the Popen pid is the server's pid.
    return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def _server_env(extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(k, None)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if extra:
        env.update(extra)
    return env


def start_bare(
    cpu: int | None,
    *,
    ws_impl: str = "auto",
    use_orjson: bool = False,
    extra_args: list[str] | None = None,
) -> Server:
    work = Path(tempfile.mkdtemp(prefix="confide-bench-bare-"))
    port = free_port()
    cmd = [sys.executable, str(BENCH / "relay_bare.py"), "--port", str(port), "--ws", ws_impl]
    if use_orjson:
        cmd.append("--orjson")
    cmd += extra_args or []
    log = work / "server.log"
    proc = _spawn(cmd, cpu, log, _server_env(None))
    srv = Server("bare", "127.0.0.1", port, proc, work, log)
    try:
        wait_port("127.0.0.1", port, 20, proc)
    except Exception:
        srv.stop()
        raise
    return srv


def confide_bin() -> str:
    exe = VENV_BIN / "confide"
    if exe.exists():
        return str(exe)
    found = shutil.which("confide")
    if not found:
        raise RuntimeError("`confide` is not installed in this venv (run scripts/bootstrap)")
    return found


def _cli(args: list[str], env: dict[str, str]) -> str:
    r = subprocess.run(
        [confide_bin(), *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    if r.returncode != 0:
        raise RuntimeError(
            f"confide {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        )
    return r.stdout.strip()


def _last_token(out: str) -> str:
    """The CLI prints the created object's id/key; take the last id-looking token."""
    tokens = re.findall(r"[A-Za-z0-9_\-]{8,}", out)
    if not tokens:
        raise RuntimeError(f"could not find an id in CLI output: {out!r}")
    return tokens[-1]


_TEMPLATES: dict[tuple[Any, ...], tuple[Path, str, list[str]]] = {}


def _fixture_template(sites: int, env: dict[str, str]) -> tuple[Path, str, list[str]]:
    """A migrated SQLite file with the fixtures, made once per process and copied per server.

    One organisation, ``sites`` sites (origin http://bench.local) and one operator user per site
    (op1@bench.example.com, op2@..., same password).  Made with the ``confide`` CLI, exactly as
    an operator would; copying the pristine file keeps every scenario point's server fresh
    without paying the CLI's start-up (and argon2) again for each point.
    """
    key = (sites, _schema_stamp())
    if key in _TEMPLATES:
        return _TEMPLATES[key]
    tdir = Path(tempfile.mkdtemp(prefix="confide-bench-template-"))
    import atexit

    atexit.register(shutil.rmtree, tdir, True)
    db = tdir / "bench.db"
    dbo = ["--database-url", f"sqlite+aiosqlite:///{db}"]
    _cli(["migrate", *dbo], env)
    org_id = _last_token(_cli(["org", "create", "Bench Org", *dbo], env))
    keys: list[str] = []
    for s in range(sites):
        name = "Bench" if s == 0 else f"Bench {s + 1}"
        keys.append(
            _last_token(
                _cli(
                    [
                        "site",
                        "create",
                        "--org",
                        org_id,
                        "--name",
                        name,
                        "--origin",
                        VISITOR_ORIGIN,
                        *dbo,
                    ],
                    env,
                )
            )
        )
        _cli(
            [
                "user",
                "create",
                "--email",
                f"op{s + 1}@bench.example.com",
                "--name",
                f"Op {s + 1}",
                "--role",
                "operator",
                "--password",
                OP_PASSWORD,
                "--site",
                keys[-1],
                *dbo,
            ],
            env,
        )
    # checkpoint the WAL into the main file so that a plain copy is complete
    import sqlite3

    with contextlib.closing(sqlite3.connect(db)) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    _TEMPLATES[key] = (db, org_id, keys)
    return _TEMPLATES[key]


def _schema_stamp() -> tuple[tuple[str, int, int], ...]:
    """Identity of the migration files: a template made before a migration changed is stale."""
    try:
        import confide

        mig = Path(confide.__file__).parent / "storage" / "migrations" / "versions"
        return tuple(
            (f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in sorted(mig.glob("*.py"))
        )
    except Exception:
        return ()


def start_confide(
    cpu: int | None,
    *,
    env_extra: dict[str, str] | None = None,
    sites: int = 1,
    serve_args: list[str] | None = None,
    database_url: str | None = None,
    traced: bool = False,
) -> Server:
    """A fresh copy of the fixture database + ``confide serve`` pinned to ``cpu``; logs each
    site's operator in once (every console socket of that site reuses the session cookie: many
    tabs, one sign-in).  With ``database_url`` (e.g. PostgreSQL) the fixtures are made there
    with the CLI instead, and that database is not reset between points."""
    work = Path(tempfile.mkdtemp(prefix="confide-bench-"))
    env = _server_env(env_extra)
    if database_url:
        db_url = database_url
        dbo = ["--database-url", db_url]
        _cli(["migrate", *dbo], env)
        org_id = _last_token(_cli(["org", "create", "Bench Org", *dbo], env))
        keys = []
        for s in range(sites):
            keys.append(
                _last_token(
                    _cli(
                        [
                            "site",
                            "create",
                            "--org",
                            org_id,
                            "--name",
                            f"Bench {s + 1}",
                            "--origin",
                            VISITOR_ORIGIN,
                            *dbo,
                        ],
                        env,
                    )
                )
            )
            email = f"op{s + 1}-{work.name}@bench.example.com"
            _cli(
                [
                    "user",
                    "create",
                    "--email",
                    email,
                    "--name",
                    f"Op {s + 1}",
                    "--role",
                    "operator",
                    "--password",
                    OP_PASSWORD,
                    "--site",
                    keys[-1],
                    *dbo,
                ],
                env,
            )
        emails = [f"op{s + 1}-{work.name}@bench.example.com" for s in range(sites)]
    else:
        template, org_id, keys = _fixture_template(sites, env)
        shutil.copyfile(template, work / "bench.db")
        db_url = f"sqlite+aiosqlite:///{work / 'bench.db'}"
        emails = [f"op{s + 1}@bench.example.com" for s in range(sites)]
    dbo = ["--database-url", db_url]
    port = free_port()
    serve = [confide_bin(), "serve"]
    if traced:  # the same app under tracemalloc (bench/serve_traced.py)
        serve = [
            sys.executable,
            str(BENCH / "serve_traced.py"),
            "--out",
            str(work / "tracemalloc.txt"),
        ]
    cmd = [
        *serve,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *dbo,
        *(serve_args or []),
    ]
    log = work / "server.log"
    proc = _spawn(cmd, cpu, log, env)
    srv = Server("confide", "127.0.0.1", port, proc, work, log, sites=[])
    srv.extra.update(org_id=org_id, db_url=db_url)
    try:
        wait_port("127.0.0.1", port, 60, proc)
        for key, email in zip(keys, emails, strict=True):
            srv.sites.append((key, login(srv, email, OP_PASSWORD)))
    except Exception as e:
        tail = srv.log_tail()
        srv.stop()
        raise RuntimeError(f"confide failed to start: {e}\n{tail}") from None
    return srv


def login(srv: Server, email: str, password: str) -> str:
    """GET /console/login for the CSRF token + cookie, POST the form; return a Cookie header."""
    import httpx

    with httpx.Client(
        base_url=srv.base_http, trust_env=False, follow_redirects=False, timeout=30
    ) as c:
        r = c.get("/console/login")
        r.raise_for_status()
        m = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', r.text) or re.search(
            r'value="([^"]+)"[^>]*name="csrf_token"', r.text
        )
        if not m:
            raise RuntimeError("no csrf_token in /console/login")
        r = c.post(
            "/console/login",
            data={"email": email, "password": password, "csrf_token": m.group(1)},
            headers={"Origin": srv.own_origin},
        )
        if r.status_code >= 400:
            raise RuntimeError(f"login failed: {r.status_code} {r.text[:300]}")
        session = c.cookies.get("confide_session")
        if session:
            return f"confide_session={session}"
        jar = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
        if not jar:
            raise RuntimeError("login set no cookie")
        return jar


# --------------------------------------------------------------------------------------------
# statistics


def pct(sorted_vals: list[float], q: float) -> float | None:
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, round(q * len(sorted_vals) + 0.5) - 1))
    return sorted_vals[i]


def fmt(v: Any, nd: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}" if abs(v) < 1000 else f"{v:.1f}"
    return str(v)


def md_table(rows: list[dict[str, Any]], cols: list[tuple[str, str]]) -> str:
    head = "| " + " | ".join(h for _, h in cols) + " |"
    sep = "|" + "|".join("---" for _ in cols) + "|"
    body = ["| " + " | ".join(fmt(r.get(k)) for k, _ in cols) + " |" for r in rows]
    return "\n".join([head, sep, *body])


async def gather_limited(coros: list[Any], limit: int) -> list[Any]:
    """``asyncio.gather`` with at most ``limit`` running at once; on the first failure the
    others are cancelled and the exception is raised."""
    sem = asyncio.Semaphore(limit)

    async def one(c: Any) -> Any:
        async with sem:
            return await c

    tasks = [asyncio.ensure_future(one(c)) for c in coros]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
