"""The writers' inline mode (one CPU: batches commit on the event loop's thread).

Benchmarks pin the server to one CPU, where messages and beacons are committed inline; CI has
two, so this module forces the mode (``CONFIDE_SQLITE_INLINE=on``) and checks what it must keep:
everything is stored and answered, and while another connection holds SQLite's write lock
(a purge, a migration) the wait happens off the loop: other sockets are still served, and the
held writes land once the lock is free.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from confide.storage.migrate import upgrade
from confide.storage.sqlite_writer import LockBusy, begin_immediate
from tests.chat.helpers import agent, client_id, open_chat, visitor
from tests.conftest import ORIGIN_A, World

pytestmark = pytest.mark.timeout(60)

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("db") / "confide.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    yield url


@pytest.fixture(scope="module")
def server_env() -> dict[str, str]:
    return {"CONFIDE_SQLITE_INLINE": "on"}


def _db_path(world: World) -> str:
    return world.server.database_url.split("///", 1)[1]


class HeldLock:
    """Another connection holding SQLite's write lock until ``release``."""

    def __init__(self, path: str) -> None:
        self._held = threading.Event()
        self._release = threading.Event()
        self._thread = threading.Thread(target=self._hold, args=(path,), daemon=True)

    def _hold(self, path: str) -> None:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("BEGIN IMMEDIATE")
        self._held.set()
        self._release.wait(30)
        conn.execute("COMMIT")
        conn.close()

    def __enter__(self) -> HeldLock:
        self._thread.start()
        assert self._held.wait(10)
        return self

    def release(self) -> None:
        self._release.set()
        self._thread.join(10)

    def __exit__(self, *_exc: object) -> None:
        self.release()


def test_begin_immediate_without_waiting_reports_a_held_lock(tmp_path: Path) -> None:
    path = str(tmp_path / "x.db")
    sqlite3.connect(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=0")
    with HeldLock(path), pytest.raises(LockBusy):
        begin_immediate(conn, wait=False)
    begin_immediate(conn, wait=False)  # free again: taken at once
    conn.execute("ROLLBACK")


def test_messages_commit_inline_and_wait_for_a_held_lock_off_the_loop(world: World) -> None:
    async def scenario() -> None:
        op, _ = await agent(world.server, world.operator_a)
        v, _ = await visitor(world.server, world.site_a, ORIGIN_A)
        conv, _ = await open_chat(v)
        await op.send(type="accept", conversation=conv, ref="a")
        await op.expect("conversation", ref="a")
        first = client_id()
        await v.send(type="send", conversation=conv, client_id=first, text="Before the lock")
        assert (await v.expect("ack", client_id=first))["seq"] == 1
        assert (await op.expect("message", client_id=first))["text"] == "Before the lock"

        held = HeldLock(_db_path(world)).__enter__()
        try:
            waiting = client_id()
            await v.send(type="send", conversation=conv, client_id=waiting, text="While locked")
            await asyncio.sleep(0.3)
            await op.send(type="ping", ref="p")  # another socket is still served meanwhile
            await op.expect("pong")
            with pytest.raises(TimeoutError):
                await v.expect("ack", timeout=0.3, client_id=waiting)
        finally:
            await asyncio.to_thread(held.release)
        ack = await v.expect("ack", timeout=10, client_id=waiting)
        assert ack["seq"] == 2
        assert (await op.expect("message", client_id=waiting))["seq"] == 2
        await v.close()
        await op.close()

    asyncio.run(scenario())


def test_beacons_commit_inline_and_wait_for_a_held_lock(world: World) -> None:
    s = world.server
    site = s.service(
        lambda ctx: ctx.sites.create_site(
            organisation_id=world.org_a,
            name="Alpha Inline",
            origins=["https://inline.example"],
            consent_mode="notice",
        )
    )
    body = {
        "site": site.key,
        "visit": secrets.token_urlsafe(16),
        "visitor": secrets.token_urlsafe(16),
        "events": [{"type": "pageview", "url": "/used-cars", "ts": 0}],
    }
    hdrs = {
        "Content-Type": "text/plain;charset=UTF-8",
        "Origin": "https://inline.example",
        "User-Agent": CHROME,
    }

    def post() -> httpx.Response:
        import time

        body["events"][0]["ts"] = int(time.time() * 1000)
        with httpx.Client(base_url=s.url, timeout=20) as http:
            return http.post("/api/t", content=json.dumps(body), headers=hdrs)

    assert post().status_code == 202
    result: list[httpx.Response] = []
    with HeldLock(_db_path(world)) as held:
        worker = threading.Thread(target=lambda: result.append(post()))
        worker.start()
        worker.join(0.5)
        assert worker.is_alive(), result[0].text  # waiting for the lock ...
        with httpx.Client(base_url=s.url, timeout=5) as http:
            assert http.get("/healthz").status_code == 200  # ... off the event loop
        held.release()
        worker.join(20)
    assert result and result[0].status_code == 202
    conn = sqlite3.connect(_db_path(world))
    try:
        stored = conn.execute(
            "SELECT count(*) FROM page_views WHERE site_id = ?", (site.id,)
        ).fetchone()[0]
    finally:
        conn.close()
    assert stored == 2
