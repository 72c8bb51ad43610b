"""Test helpers that ship with the code: a live server in a subprocess, databases, users.

Why a subprocess: the tests talk to the server as browsers and load balancers do (real HTTP and
WebSocket on an ephemeral port) and can kill and restart it to prove nothing acked is lost.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PG_ADMIN_URL = os.environ.get("CONFIDE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database, dropped afterwards (parallel-safe)."""
    import asyncpg  # type: ignore[import-untyped]

    name = f"confide_test_{os.getpid()}_{secrets.token_hex(4)}"
    admin = PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}_keys" WITH (FORCE)'))


@dataclass
class Account:
    email: str
    password: str
    user_id: str


@dataclass
class LiveServer:
    """``confide serve`` on an ephemeral port, against ``database_url``."""

    database_url: str
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CONFIDE_DATABASE_URL": self.database_url, **self.env}
        result = subprocess.run(
            [sys.executable, "-m", "confide", *args],
            env=env,
            capture_output=True,
            text=True,
            cwd=self.workdir,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"confide {' '.join(args)} failed: {result.stderr}")
        return result

    def start(self) -> LiveServer:
        if not self.port:
            self.port = free_port()
        self.log_path = self.workdir / f"server-{self.port}.log"
        env = {
            **os.environ,
            "CONFIDE_DATABASE_URL": self.database_url,
            "CONFIDE_LOG_LEVEL": "INFO",
            # Tests drive the public forms far faster than people; tests/web/test_throttle.py
            # sets its own limit.
            "CONFIDE_PUBLIC_FORM_BURST": "10000",
            # No purge a minute after start-up under a test's feet (tests/retention runs it).
            "CONFIDE_RETENTION_INTERVAL_S": "0",
            **self.env,
        }
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "confide",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        # Generous: a busy 2-core machine (browsers, the other test worker) can take half a
        # minute to migrate a fresh database and import everything.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.logs()[-2000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.proc.kill()  # not left running for another test to trip over
        self.proc.wait()
        raise RuntimeError(f"server did not become ready: {self.logs()[-2000:]}")

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self, *, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    # --- fixtures through the services (in-process: much faster than the CLI) -------------

    def service(self, call: Any) -> Any:
        from confide.cli.runtime import run_service

        return run_service(self.database_url, call)

    def create_org(self, name: str) -> str:
        return str(self.service(lambda ctx: ctx.accounts.create_organisation(name)).id)

    def create_site(self, org_id: str, name: str, origins: list[str]) -> tuple[str, str]:
        """Returns (site key, site id)."""
        site = self.service(
            lambda ctx: ctx.sites.create_site(organisation_id=org_id, name=name, origins=origins)
        )
        return site.key, site.id

    def create_user(
        self,
        role: str,
        *,
        org: str | None = None,
        sites: list[str] | None = None,
        email: str | None = None,
        name: str = "Test User",
    ) -> Account:
        from confide.accounts.models import Role

        email = email or f"{role}-{secrets.token_hex(4)}@example.com"
        password = "pw-" + secrets.token_hex(8)
        user = self.service(
            lambda ctx: ctx.accounts.create_user(
                email=email,
                name=name,
                role=Role(role),
                password=password,
                organisation_id=org,
                site_ids=sites or [],
            )
        )
        return Account(email, password, user.id)

    def login(self, account: Account) -> httpx.Client:
        """An HTTP client holding a console session for ``account``."""
        client = httpx.Client(base_url=self.url, timeout=10)
        page = client.get("/console/login")
        csrf = re.search(r'name="csrf_token"\s+value="([^"]+)"', page.text)
        assert csrf is not None, "login form has no csrf_token"
        response = client.post(
            "/console/login",
            data={
                "email": account.email,
                "password": account.password,
                "csrf_token": csrf.group(1),
            },
        )
        assert response.status_code == 303, response.text[:500]
        return client


def session_cookie(client: httpx.Client) -> str:
    value = client.cookies.get("confide_session")
    assert value
    return str(value)


async def ws_connect(url: str, *, origin: str, cookie: str | None = None) -> Any:
    import websockets

    headers = {"Cookie": f"confide_session={cookie}"} if cookie else None
    return await websockets.connect(url, origin=origin, additional_headers=headers)  # type: ignore[arg-type]


async def recv_until(ws: Any, kind: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
    """Read frames until one of ``kind`` (matching ``match``) arrives; others are skipped."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise TimeoutError(f"no {kind} frame matching {match}")
        frame = json.loads(await asyncio.wait_for(ws.recv(), remaining))
        if frame.get("type") == kind and all(frame.get(k) == v for k, v in match.items()):
            return dict(frame)
