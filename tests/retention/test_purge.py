"""The retention purge on a clock the tests control (SQLite and PostgreSQL): minimum, maximum,
contract end with return-then-delete, legal holds, behavioural retention, dry runs, reruns."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from confide.accounts.models import Organisation
from confide.audit.log import AuditLog
from confide.chat.models import ChatIdentifier, Conversation, Message
from confide.clock import FrozenClock, frozen_at
from confide.crypto.vault import ERASED
from confide.errors import InvalidInput, NotFound
from confide.ids import new_id
from confide.leads.models import Person
from confide.privacy.deadlines import add_months
from confide.privacy.models import PrivacyRequest
from confide.retention import holds
from confide.retention.models import RetentionRun
from confide.retention.purge import Purger
from confide.retention.task import RetentionTask
from confide.settings import Settings
from confide.sites.models import Site
from confide.storage.scope import Scope
from confide.tracking.models import Visit
from confide.web.context import AppContext

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Iterator[FrozenClock]:
    with frozen_at(T0) as frozen:
        yield frozen


async def _org(ctx: AppContext, **settings: object) -> tuple[str, Site]:
    org = await ctx.accounts.create_organisation("Kept Motors")
    async with ctx.db.session(Scope.system()) as s:
        stored = await s.get(Organisation, org.id)
        assert stored is not None
        for key, value in settings.items():
            setattr(stored, key, value)
    site = await ctx.sites.create_site(
        organisation_id=org.id, name="Kept", origins=["https://kept.example"]
    )
    return org.id, site


async def _chat(
    ctx: AppContext, site: Site, words: str, email: str | None = None
) -> tuple[str, str]:
    actor, view, _ = await ctx.chat.open_conversation(site, None, None)
    ref = await ctx.chat.authorise(actor, view.id)
    await ctx.chat.post(actor, ref, f"m-{view.id}", words)
    if email:
        await ctx.leads.update_details(actor, view.id, {"email": email})
    return actor.visitor_id, view.id


async def _count(ctx: AppContext, model: object, *where: object) -> int:
    async with ctx.db.session(Scope.system(), read_only=True) as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)  # type: ignore[arg-type]


def run(url: str, tmp: Path, body: Callable[[AppContext, Purger], Awaitable[None]]) -> None:
    async def go() -> None:
        ctx = AppContext.build(Settings(database_url=url, worker=False, rollup_interval_s=0))
        await ctx.start()
        try:
            await body(ctx, Purger(ctx.db, batch=2, exports_dir=tmp / "exports"))
        finally:
            await ctx.stop()

    asyncio.run(go())


def test_minimum_then_chosen_retention(
    database_url: str, clock: FrozenClock, tmp_path: Path
) -> None:
    async def body(ctx: AppContext, purger: Purger) -> None:
        org, site = await _org(ctx, retention_months=3)
        _v, conv = await _chat(ctx, site, "keep me three months", "kept@example.org")
        clock.advance(timedelta(days=89))
        await purger.run()
        assert await _count(ctx, Conversation, Conversation.id == conv) == 1
        clock.advance(timedelta(days=4))  # past 3 calendar months
        dry = await purger.run(dry_run=True)
        assert any(f["store"] == "subjects" and f["rows"] == 1 for f in dry.report)
        assert await _count(ctx, Conversation, Conversation.id == conv) == 1
        done = await purger.run()
        assert await _count(ctx, Conversation, Conversation.id == conv) == 0
        assert await _count(ctx, Person, Person.organisation_id == org) == 0
        assert any(f["rule"] == "retention" for f in done.report)
        again = await purger.run()  # idempotent: nothing more to do
        assert not [f for f in again.report if f["organisation_id"] == org]

    run(database_url, tmp_path, body)


def test_what_a_visitor_typed_goes_with_their_chat(
    database_url: str, clock: FrozenClock, tmp_path: Path
) -> None:
    """The blind indexes of an email typed in a chat (chat/identifiers.py) are purged with it."""

    async def body(ctx: AppContext, purger: Purger) -> None:
        _org_id, site = await _org(ctx, retention_months=3)
        _v, conv = await _chat(ctx, site, "write to me at typed.only@example.org")
        typed = ChatIdentifier.conversation_id == conv
        assert await _count(ctx, ChatIdentifier, typed) == 1
        clock.advance(timedelta(days=93))
        await purger.run()
        assert await _count(ctx, Conversation, Conversation.id == conv) == 0
        assert await _count(ctx, ChatIdentifier, typed) == 0

    run(database_url, tmp_path, body)


def test_legal_hold_keeps_a_person(database_url: str, clock: FrozenClock, tmp_path: Path) -> None:
    async def body(ctx: AppContext, purger: Purger) -> None:
        org, site = await _org(ctx, retention_months=3)
        await _chat(ctx, site, "held", "held@example.org")
        _v2, free = await _chat(ctx, site, "free", "free@example.org")
        async with ctx.db.session(Scope.system(), read_only=True) as s:
            held_person = await s.scalar(
                select(Person.id).where(
                    Person.organisation_id == org,
                    Person.email_index == ctx.db.vault.blind_index("email", "held@example.org"),
                )
            )
        assert held_person
        other, _site = await _org(ctx)

        async def hold(org_id: str, kind: str, target: str) -> object:
            return await holds.place(
                ctx.db,
                organisation_id=org_id,
                kind=kind,
                target_id=target,
                owner="Legal team",
                reason="Pending claim, court ref 123",
            )

        # A hold that would protect nothing is refused, not listed as active.
        with pytest.raises(InvalidInput, match="Name the person"):
            await hold(org, "person", "")
        with pytest.raises(NotFound, match="No such lead in this organisation"):
            await hold(org, "lead", "doesnotexist")
        with pytest.raises(NotFound, match="No such person in this organisation"):
            await hold(other, "person", held_person)
        with pytest.raises(NotFound, match="No such organisation"):
            await hold("nope", "organisation", "")
        assert await holds.active(ctx.db) == []
        await hold(org, "person", held_person)
        clock.advance(timedelta(days=120))
        report = await purger.run()
        assert await _count(ctx, Person, Person.id == held_person) == 1
        assert await _count(ctx, Conversation, Conversation.id == free) == 0
        assert any(f["held"] for f in report.report if f["organisation_id"] == org)

    run(database_url, tmp_path, body)


def test_contract_end_returns_then_deletes(
    database_url: str, clock: FrozenClock, tmp_path: Path
) -> None:
    async def body(ctx: AppContext, purger: Purger) -> None:
        end = date(2026, 3, 31)
        org, site = await _org(ctx, contract_end=end, end_of_contract="return_then_delete")
        _v, conv = await _chat(ctx, site, "contract data", "contract@example.org")
        async with ctx.db.session(Scope.system(), read_only=True) as s:
            sealed = await s.scalar(select(Message.text).where(Message.conversation_id == conv))
        assert sealed == "contract data"
        clock._at = datetime(2026, 3, 31, 9, 0, tzinfo=UTC)
        await purger.run()
        bundles = list((tmp_path / "exports").glob("return-*.json"))
        assert len(bundles) == 1 and "contract data" in bundles[0].read_text()
        assert await _count(ctx, Conversation, Conversation.id == conv) == 1  # not yet
        clock._at = datetime(2026, 6, 30, 9, 0, tzinfo=UTC)  # end + 3 months: the last day
        await purger.run()
        assert await _count(ctx, Conversation, Conversation.organisation_id == org) == 0
        assert await _count(ctx, Person, Person.organisation_id == org) == 0
        async with ctx.db.session(Scope.system(), read_only=True) as s:
            stored = await s.get(Organisation, org)
            assert stored is not None and stored.purged_at is not None
        assert not bundles[0].exists()  # the returned copy goes with the data (R07)
        _ = ERASED
        trail = await AuditLog(ctx.db).trail(Scope.system(), limit=50)
        erased = [e for e in trail if e["action"] == "retention.erased"]
        assert erased and erased[0]["organisation_id"] == org
        assert "conversations" in erased[0]["fields"]
        assert "contract@example.org" not in str(erased)  # counts and rules, no data

    run(database_url, tmp_path, body)


def test_nothing_new_is_collected_once_the_contract_ended(
    database_url: str, clock: FrozenClock, tmp_path: Path
) -> None:
    """From the end date the client's sites are no longer served: no chat, no beacon, so
    nothing lands that the contract-end erasure has already passed (or would miss)."""

    async def body(ctx: AppContext, purger: Purger) -> None:
        _org_id, site = await _org(ctx, contract_end=date(2026, 3, 31))
        assert (await ctx.sites.by_key(site.key)).id == site.id  # still in contract
        clock._at = datetime(2026, 3, 31, 9, 0, tzinfo=UTC)
        # The cached site is checked against the date on each use: no wait for the cache.
        with pytest.raises(NotFound, match="no longer available"):
            await ctx.sites.by_key(site.key)
        # People keep their rights while the data is held: the request page still finds it.
        assert (await ctx.sites.by_key(site.key, serving=False)).id == site.id

    run(database_url, tmp_path, body)


def test_behaviour_has_its_own_shorter_retention(
    database_url: str, clock: FrozenClock, tmp_path: Path
) -> None:
    async def body(ctx: AppContext, purger: Purger) -> None:
        org, site = await _org(ctx, behaviour_retention_days=30)
        async with ctx.db.session(Scope.system()) as s:
            for i, age in enumerate((31, 29)):
                at = T0 - timedelta(days=age)
                s.add(
                    Visit(
                        id=f"visit-{org[:8]}-{i}",
                        organisation_id=org,
                        site_id=site.id,
                        started_at=at,
                        last_seen_at=at,
                        first_ts=at,
                        pageviews=1,
                        seconds=5,
                        is_returning=False,
                        channel="direct",
                        device="desktop",
                        campaign={},
                    )
                )
        await purger.run()
        assert await _count(ctx, Visit, Visit.organisation_id == org) == 1

    run(database_url, tmp_path, body)


def test_the_daily_schedule_survives_restarts(
    database_url: str, clock: FrozenClock, tmp_path: Path
) -> None:
    """The next run is due a day after the last one started, whatever restarted in between;
    a database that was never purged is purged shortly after start-up."""

    async def body(ctx: AppContext, purger: Purger) -> None:
        async with ctx.db.session(Scope.system()) as s:  # the database is shared: start afresh
            await s.execute(delete(RetentionRun))
        task = RetentionTask(purger, interval_s=86400, startup_delay_s=60)
        assert await task.first_delay() == 60  # never purged
        await purger.run(dry_run=True)
        assert await task.first_delay() == 60  # a dry run is not a purge
        await purger.run()
        clock.advance(timedelta(hours=20))
        assert await task.first_delay() == pytest.approx(4 * 3600)
        clock.advance(timedelta(hours=5))
        assert await task.first_delay() == 60  # overdue: soon after start-up

    run(database_url, tmp_path, body)


def test_request_records_go_24_months_after_the_request_ended(
    database_url: str, clock: FrozenClock, tmp_path: Path
) -> None:
    """R54: kept for compliance at least 24 months, then purged; open requests stay."""

    async def body(ctx: AppContext, purger: Purger) -> None:
        org, _site = await _org(ctx)

        def request(state: str, completed: datetime | None) -> PrivacyRequest:
            return PrivacyRequest(
                id=new_id(), organisation_id=org, kind="access", regime="gdpr", state=state,
                channel="form", received_at=T0, due_at=T0 + timedelta(days=30),
                completed_at=completed,
            )  # fmt: skip

        done, denied, open_ = (
            request("complete", T0 + timedelta(days=3)),
            request("denied", None),
            request("pending", None),
        )
        async with ctx.db.session(Scope.system()) as s:
            s.add_all([done, denied, open_])
        ids = [done.id, denied.id, open_.id]
        clock._at = add_months(T0, 24)  # the denied one (ended T0) is exactly 24 months old
        await purger.run()
        assert await _count(ctx, PrivacyRequest, PrivacyRequest.id.in_(ids)) == 3
        clock._at = add_months(T0, 24) + timedelta(days=4)
        run_ = await purger.run()
        left = await _ids(ctx, ids)
        assert left == {open_.id}
        assert {(f["rule"], f["rows"]) for f in run_.report} >= {("request_records", 2)}

    run(database_url, tmp_path, body)


async def _ids(ctx: AppContext, ids: list[str]) -> set[str]:
    async with ctx.db.session(Scope.system(), read_only=True) as s:
        return set(await s.scalars(select(PrivacyRequest.id).where(PrivacyRequest.id.in_(ids))))
