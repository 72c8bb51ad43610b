"""Personal data at rest: sealed per subject, unreadable in the file or a dump, shreddable (R34,
R35, R42), and master keys rotate without losing data."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from confide.chat.models import Message
from confide.crypto.keystore import KeyStore
from confide.crypto.vault import ERASED, KeyDestroyed, Vault, new_master_key_spec, parse_master_keys
from confide.leads.models import Person
from confide.settings import Settings
from confide.storage.engine import Database
from confide.storage.migrate import upgrade
from confide.storage.scope import Scope
from confide.testing import postgres_database
from confide.web.context import AppContext

EMAIL = "sealed.sam@example.org"
PHONE_TYPED = "07400 123456"
SECRET_WORDS = "my-secret-part-exchange-plan"
OTHER_WORDS = "another-visitor-entirely"


def _vault(tmp_path: Path, spec: str) -> Vault:
    return Vault(KeyStore(f"sqlite:///{tmp_path / 'keys.db'}"), parse_master_keys(spec))


def test_sealed_values_bind_to_their_subject(tmp_path: Path) -> None:
    vault = _vault(tmp_path, new_master_key_spec("k1"))
    token = vault.seal("subject-a", "org-1", "hello")
    assert token is not None and "hello" not in token
    assert vault.open(token) == "hello"
    forged = token.replace("subject-a", "subject-b", 1)
    with pytest.raises(Exception):
        vault.open(forged)


def test_the_key_store_file_is_the_owners_only(tmp_path: Path) -> None:
    vault = _vault(tmp_path, new_master_key_spec("k1"))
    assert vault.seal("subject-a", "org-1", "hello")
    for name in ("keys.db", "keys.db-wal"):
        mode = (tmp_path / name).stat().st_mode
        assert mode & 0o077 == 0, (name, oct(mode))


def test_destroyed_subject_key_makes_values_unreadable(tmp_path: Path) -> None:
    vault = _vault(tmp_path, new_master_key_spec("k1"))
    gone = vault.seal("subject-a", "org-1", "erase me")
    kept = vault.seal("subject-b", "org-1", "keep me")
    assert gone and kept
    assert vault.destroy_subject("subject-a")
    with pytest.raises(KeyDestroyed):
        vault.open(gone)
    assert vault.open(kept) == "keep me"


def test_blind_index_is_keyed_and_changes_with_the_master_key(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _vault(tmp_path / "a", new_master_key_spec("k1"))
    second = _vault(tmp_path / "b", new_master_key_spec("k2"))
    index = first.blind_index("email", EMAIL)
    assert index == first.blind_index("email", EMAIL)
    assert index != hashlib.sha256(EMAIL.encode()).hexdigest()
    assert index != second.blind_index("email", EMAIL)


def test_rotation_rewraps_organisation_keys_without_losing_data(tmp_path: Path) -> None:
    old = new_master_key_spec("old")
    vault = _vault(tmp_path, old)
    token = vault.seal("subject-a", "org-1", "survives rotation")
    assert token is not None
    new = new_master_key_spec("new")
    both = _vault(tmp_path, f"{new},{old}")
    assert both.rotate() == 1
    only_new = _vault(tmp_path, new)
    assert only_new.open(token) == "survives rotation"


# --- the product, end to end -------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'confide.db'}"
        upgrade(url)
        yield url
    else:
        with postgres_database() as url:
            upgrade(url)
            yield url


async def _chat_with_details(ctx: AppContext, words: str, email: str | None) -> tuple[str, str]:
    """A visitor chats and (optionally) gives an email; returns (visitor id, conversation id)."""
    org = await ctx.accounts.create_organisation("Sealed Motors")
    site = await ctx.sites.create_site(
        organisation_id=org.id, name="Sealed", origins=["https://sealed.example"]
    )
    actor, view, _ = await ctx.chat.open_conversation(site, None, "Sam Sealed")
    ref = await ctx.chat.authorise(actor, view.id)
    await ctx.chat.post(actor, ref, "sealed-msg-1", f"{words} call {PHONE_TYPED}")
    if email:
        await ctx.leads.update_details(actor, view.id, {"email": email, "phone": PHONE_TYPED})
    return actor.visitor_id, view.id


def _raw(url: str) -> bytes:
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        pytest.skip("pg_dump not installed")
    return subprocess.run(
        [pg_dump, "--data-only", "--inserts", url], capture_output=True, timeout=60, check=True
    ).stdout


def test_nothing_personal_is_readable_in_the_database(database_url: str) -> None:
    async def go() -> None:
        ctx = AppContext.build(
            Settings(database_url=database_url, worker=False, rollup_interval_s=0)
        )
        await ctx.start()
        try:
            await _chat_with_details(ctx, SECRET_WORDS, EMAIL)
            async with ctx.db.session(Scope.system(), read_only=True) as s:
                person = (await s.scalars(select(Person))).first()
                texts = list(await s.scalars(select(Message.text)))
            assert person is not None and person.email == EMAIL  # the service layer reads clear
            assert any(SECRET_WORDS in t for t in texts)
            assert person.email_index == ctx.db.vault.blind_index("email", EMAIL)
        finally:
            await ctx.stop()

    asyncio.run(go())
    raw = _raw(database_url)
    assert b"Sealed Motors" in raw  # we are reading the data
    for needle in (EMAIL, "+447400123456", PHONE_TYPED, SECRET_WORDS, "Sam Sealed"):
        assert needle.encode() not in raw, f"{needle!r} is readable at rest"


def test_a_backup_cannot_be_read_for_an_erased_subject(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'confide.db'}"
    upgrade(url)

    async def seed() -> tuple[str, str]:
        ctx = AppContext.build(Settings(database_url=url, worker=False, rollup_interval_s=0))
        await ctx.start()
        try:
            erased, _ = await _chat_with_details(ctx, SECRET_WORDS, EMAIL)
            kept, _ = await _chat_with_details(ctx, OTHER_WORDS, None)
        finally:
            await ctx.stop()
        return erased, kept

    erased, _kept = asyncio.run(seed())
    backup = tmp_path / "backup.db"
    src = tmp_path / "confide.db"
    import sqlite3

    with sqlite3.connect(src) as live, sqlite3.connect(backup) as copy:
        live.backup(copy)
    live_db = Database(url)
    assert live_db.vault.destroy_subject(erased)
    live_db.vault.forget_cache()

    async def read_backup() -> list[str]:
        db = Database(f"sqlite:///{backup}", keystore_url=live_db.vault.store.url)
        try:
            async with db.session(Scope.system(), read_only=True) as s:
                return list(await s.scalars(select(Message.text).order_by(Message.id)))
        finally:
            await db.dispose()

    texts = asyncio.run(read_backup())
    assert any(OTHER_WORDS in t for t in texts)  # other people's data is intact
    assert not any(SECRET_WORDS in t for t in texts)
    assert ERASED in texts
