"""The sub-processor register (art. 28(2), (4); R04, R36) through the services, on SQLite and
PostgreSQL: residency refused with its reason, prior notice to every client admin (real SMTP) and
every inbox before the effective date, objections recorded and visible to our admins only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from confide.accountability.models import Notice
from confide.audit.models import AuditEntry
from confide.clock import FrozenClock
from confide.errors import Conflict, Forbidden, InvalidInput, NotFound
from confide.storage.scope import Scope
from tests.accountability.helpers import World, client_emails, run

PURPOSE = "Sends our transactional email (lead notifications)."


def test_a_subprocessor_outside_the_eu_uk_handling_personal_data_is_refused(
    database_url: str, clock: FrozenClock
) -> None:
    async def body(w: World) -> None:
        before = len(await w.acct.subprocessors.listing(w.admin))
        for categories in (["user.contact.email"], ["system.operations", "user.content"]):
            with pytest.raises(InvalidInput) as refused:
                await w.acct.subprocessors.add(
                    w.admin, name="Mailgun US", region="us", purpose=PURPOSE, categories=categories
                )
            message = refused.value.message
            assert "region US, outside the EU/UK" in message
            assert "personal data" in message and "policy 4.2" in message
        # Client staff's own data (account.*) is personal data too (policy 2.5).
        with pytest.raises(InvalidInput, match=r"account\.contact"):
            await w.acct.subprocessors.add(
                w.admin, name="CRM", region="US", purpose=PURPOSE, categories=["account.contact"]
            )
        with pytest.raises(InvalidInput, match="Region must be one of"):
            await w.acct.subprocessors.add(
                w.admin, name="X", region="Mars", purpose=PURPOSE, categories=["system.operations"]
            )
        # Nothing was stored, nobody was told.
        assert len(await w.acct.subprocessors.listing(w.admin)) == before
        assert w.sink.messages == []
        # Outside the EU/UK with system data only, or inside with personal data: allowed.
        ok = await w.acct.subprocessors.add(
            w.admin,
            name="Uptime Robot",
            region="US",
            purpose="Checks that the service answers.",
            categories=["system.operations"],
        )
        assert ok.subprocessor["personal_data"] is False
        eu = await w.acct.subprocessors.add(
            w.admin, name="Postmark EU", region="eu", purpose=PURPOSE, categories=["user.contact"]
        )
        assert eu.subprocessor["region"] == "EU"

    run(database_url, clock, body)


def test_only_our_admins_add_subprocessors(database_url: str, clock: FrozenClock) -> None:
    async def body(w: World) -> None:
        for who in (w.client_a, w.operator):
            with pytest.raises(Forbidden):
                await w.acct.subprocessors.add(
                    who, name="X", region="UK", purpose=PURPOSE, categories=["system.operations"]
                )
        with pytest.raises(InvalidInput, match="at least 14 days' notice"):
            await w.acct.subprocessors.add(
                w.admin,
                name="Rushed Ltd",
                region="UK",
                purpose=PURPOSE,
                categories=["user.contact"],
                effective_at=w.clock.now() + timedelta(days=3),
            )

    run(database_url, clock, body)


def test_adding_one_tells_every_client_admin_and_inbox_before_it_takes_effect(
    database_url: str, clock: FrozenClock
) -> None:
    async def body(w: World) -> None:
        done = await w.acct.subprocessors.add(
            w.admin,
            name="Postmark",
            region="EU",
            purpose=PURPOSE,
            categories=["user.contact.email", "user.content.message"],
            portal_url="https://chat.example.test/portal/inbox",
        )
        sp = done.subprocessor
        effective = w.clock.now() + timedelta(days=30)
        assert sp["effective_at"] == effective.isoformat()
        assert sp["status"] == "announced"

        # One email per client admin of every organisation, nobody else (our staff are not).
        admins = await client_emails(w.ctx)
        assert {w.client_a.email, w.client_a2.email, w.client_b.email} <= admins
        received = [m["To"] for m in w.sink.messages]
        assert sorted(received) == sorted(admins)
        assert w.admin.email not in received and w.operator.email not in received
        mail = w.mail_to(w.client_a.email)[0]
        text = mail.get_content()
        assert mail["Subject"].startswith("New sub-processor: Postmark")
        for fact in ("Postmark", "Region: EU", PURPOSE, "user.contact.email", "article 28(2)"):
            assert fact in text
        assert f"{effective:%d %B %Y}" in text
        assert "https://chat.example.test/portal/inbox" in text
        assert mail["List-Unsubscribe"] is None  # a contractual notice, not a newsletter
        assert done.emails_sent == len(admins) and done.emails_failed == 0

        # Each organisation's inbox has it, dated now: before it takes effect.
        for client in (w.client_a, w.client_b):
            items = await w.acct.inbox.messages(client)
            notice = next(i for i in items if i.ref == sp["id"])
            assert notice.kind == "subprocessor" and "Postmark" in notice.title
            assert notice.created_at < effective
        # The evidence: one sent notice per admin, and the change in the audit log.
        async with w.ctx.db.session(Scope.system(), read_only=True) as s:
            notices = list(await s.scalars(select(Notice).where(Notice.ref == sp["id"])))
            audit = await s.scalar(
                select(AuditEntry).where(
                    AuditEntry.action == "config.subprocessor.add",
                    AuditEntry.subject_ref == sp["id"],
                )
            )
        assert len(notices) == len(admins) and all(n.sent_at == w.clock.now() for n in notices)
        assert audit is not None and audit.actor_id == w.admin.user_id

        # It is not in effect (not used, listed apart) until its date.
        w.clock.advance(timedelta(days=29, hours=23))
        listed = {s["id"]: s for s in await w.acct.subprocessors.listing(w.client_a)}
        assert listed[sp["id"]]["status"] == "announced"
        w.clock.advance(timedelta(hours=1))
        listed = {s["id"]: s for s in await w.acct.subprocessors.listing(w.client_a)}
        assert listed[sp["id"]]["status"] == "in_effect"

    run(database_url, clock, body)


def test_an_objection_is_recorded_and_visible_to_our_admins(
    database_url: str, clock: FrozenClock
) -> None:
    async def body(w: World) -> None:
        sp = (
            await w.acct.subprocessors.add(
                w.admin, name="Zendesk", region="UK", purpose=PURPOSE, categories=["user.contact"]
            )
        ).subprocessor
        w.clock.advance(timedelta(days=2))
        reason = "Our group policy forbids new US-owned processors; please discuss."
        objection = await w.acct.subprocessors.object(w.client_a, w.org_a, sp["id"], reason)
        assert objection["before_effective"] is True

        # Who, when, why: visible to our admins...
        listed = {s["id"]: s for s in await w.acct.subprocessors.listing(w.admin)}
        [seen] = listed[sp["id"]]["objections"]
        assert seen["user_email"] == w.client_a.email and seen["reason"] == reason
        assert seen["created_at"] == w.clock.now().isoformat()
        assert seen["organisation_id"] == w.org_a
        # ...and to organisation A's staff, never to organisation B's.
        mine = {s["id"]: s for s in await w.acct.subprocessors.listing(w.client_a2)}
        theirs = {s["id"]: s for s in await w.acct.subprocessors.listing(w.client_b)}
        assert len(mine[sp["id"]]["objections"]) == 1
        assert theirs[sp["id"]]["objections"] == []
        # The reason is sealed at rest.
        async with w.ctx.db.session(Scope.system(), read_only=True) as s:
            raw = await s.scalar(
                text("SELECT reason FROM subprocessor_objections WHERE id = :id"),
                {"id": objection["id"]},
            )
        assert raw.startswith("c1:") and "group policy" not in raw

        # One objection per organisation; another organisation's name is not found.
        with pytest.raises(Conflict):
            await w.acct.subprocessors.object(w.client_a2, w.org_a, sp["id"], "Me too, please.")
        with pytest.raises(NotFound):
            await w.acct.subprocessors.object(w.client_a, w.org_b, sp["id"], "Not mine to say.")
        with pytest.raises(NotFound):
            await w.acct.subprocessors.object(w.client_b, w.org_b, "x" * 22, "No such thing.")
        with pytest.raises(Forbidden):  # our staff do not object for a client
            await w.acct.subprocessors.object(w.admin, w.org_a, sp["id"], "On their behalf")
        with pytest.raises(InvalidInput):
            await w.acct.subprocessors.object(w.client_b, w.org_b, sp["id"], "no")

    run(database_url, clock, body)
