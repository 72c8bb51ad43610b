"""The audit log is append-only and tamper-evident: `confide audit verify` finds a changed,
removed or reordered entry (on SQLite, where we can tamper with the file below the triggers)."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from confide.audit.log import SYSTEM, AuditLog, verify
from confide.settings import Settings
from confide.storage.engine import Database
from confide.storage.migrate import upgrade
from confide.storage.scope import Scope
from confide.web.context import AppContext


def _seed(url: str, n: int = 6) -> None:
    async def go() -> None:
        db = Database(url)
        log = AuditLog(db)
        for i in range(n):
            await log.record(SYSTEM, "test.action", subject_kind="thing", subject_ref=f"t{i}")
        await db.dispose()

    asyncio.run(go())


def _cli(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "confide", "audit", "verify", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _tamper(path: Path, *sql: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("DROP TRIGGER audit_log_no_delete")
    for statement in sql:
        conn.execute(statement)
    conn.commit()
    conn.close()


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    upgrade(url)
    _seed(url)
    return url


def test_intact_chain_verifies(url: str) -> None:
    result = _cli(url)
    assert result.returncode == 0, result.stderr
    assert "intact: 6 entries" in result.stdout


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("UPDATE audit_log SET subject_ref = 'forged' WHERE seq = 3", "entry 3: its content"),
        ("DELETE FROM audit_log WHERE seq = 4", "entry 4 is missing"),
        (
            "UPDATE audit_log SET seq = CASE seq WHEN 2 THEN 5 WHEN 5 THEN 2 ELSE seq END "
            "WHERE seq IN (2, 5)",
            "does not link",
        ),
        ("UPDATE audit_log SET at = 'not a time' WHERE seq = 3", "cannot be read"),
        ("UPDATE audit_log SET fields = '{broken' WHERE seq = 3", "cannot be read"),
    ],
    ids=["changed", "removed", "reordered", "corrupt-time", "corrupt-fields"],
)
def test_tampering_is_detected(url: str, change: str, expected: str) -> None:
    path = Path(url.split("///", 1)[1])
    if "CASE" in change:  # swap two rows' positions without a unique clash
        _tamper(
            path,
            "UPDATE audit_log SET seq = -2 WHERE seq = 2",
            "UPDATE audit_log SET seq = 2 WHERE seq = 5",
            "UPDATE audit_log SET seq = 5 WHERE seq = -2",
        )
    else:
        _tamper(path, change)
    result = _cli(url)
    assert result.returncode == 1
    assert expected in result.stderr, result.stderr


def test_the_database_refuses_to_change_an_entry(database_url: str) -> None:
    async def go() -> None:
        db = Database(database_url)
        try:
            await AuditLog(db).record(SYSTEM, "test.action")
            for statement in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"):
                with pytest.raises(Exception, match="append-only"):
                    async with db.session(Scope.system()) as s:
                        await s.execute(text(statement))
            checked, problems = await verify(db)
            assert checked >= 1 and problems == []
        finally:
            await db.dispose()

    asyncio.run(go())


def test_reads_of_personal_data_are_audited(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'reads.db'}"
    upgrade(url)

    async def go() -> list[tuple[str, str | None]]:
        from confide.accounts.models import Role, User

        ctx = AppContext.build(Settings(database_url=url, worker=False, rollup_interval_s=0))
        await ctx.start()
        try:
            org = await ctx.accounts.create_organisation("Audit Motors")
            site = await ctx.sites.create_site(
                organisation_id=org.id, name="Audit", origins=["https://audit.example"]
            )
            user = await ctx.accounts.create_user(
                email="op@audit.example",
                name="Op",
                role=Role.ADMIN,
                password="correct horse battery",
            )
            async with ctx.db.session(Scope.system()) as s:
                loaded = await s.get(User, user.id)
                assert loaded is not None
                admin = await ctx.accounts.principal_for(loaded)
            actor, view, _ = await ctx.chat.open_conversation(site, None, None)
            ref = await ctx.chat.authorise(actor, view.id)
            await ctx.chat.post(actor, ref, "audit-msg-1", "hello")
            await ctx.lead_records.panel(admin, view.id)
            await ctx.chat.transcript(admin, view.id)
            await ctx.chat.search(admin, q="", site_id=None, page=0)  # the history list
            await ctx.chat.search(admin, q="hello", site_id=None, page=0)
            trail = await AuditLog(ctx.db).trail(Scope.system())
            searched = next(t for t in trail if t["action"] == "conversation.search")
            assert "hello" not in str(searched)  # what was searched for is not kept
            return [(t["action"], t["actor_id"]) for t in trail]
        finally:
            await ctx.stop()

    trail = asyncio.run(go())
    actions = [a for a, _ in trail]
    assert "personal_data.view" in actions and "transcript.view" in actions
    assert "conversation.list" in actions and "conversation.search" in actions
    assert all(actor is not None for a, actor in trail if a.endswith(".view"))
