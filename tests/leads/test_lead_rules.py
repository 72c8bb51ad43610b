"""The policy's lead rules, through the services on SQLite and PostgreSQL (no HTTP).

R14 GPC flag travels, R23 person only after details, R24 returning visitor, R25 immutable
consent evidence, R26 no delivery without consent, R27 withdrawal stops delivery, R28 declining
keeps the chat, R31 minors, and the offline form as a lead.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select, text

from confide.accounts.models import Role, User
from confide.accounts.principal import Principal
from confide.chat.models import Message
from confide.chat.service import VisitorActor
from confide.delivery.adf import render_adf
from confide.delivery.models import OutboxJob
from confide.errors import ConsentRequired, InvalidState, NotFound
from confide.leads.models import ConsentRecord, Lead, Person
from confide.leads.snapshots import lead_snapshot
from confide.settings import Settings
from confide.sites.models import Site
from confide.storage.scope import Scope
from confide.web.context import AppContext

ORIGIN = "https://dealer.example"


@dataclass
class World:
    ctx: AppContext
    site: Site
    other_site: Site
    operator: Principal
    stranger: Principal  # a client of another organisation


async def _world(database_url: str) -> tuple[AppContext, World]:
    ctx = AppContext.build(Settings(database_url=database_url, worker=False, rollup_interval_s=0))
    await ctx.start()
    org = await ctx.accounts.create_organisation("Alpha Cars")
    other = await ctx.accounts.create_organisation("Beta Motors")
    site = await ctx.sites.create_site(organisation_id=org.id, name="Alpha Leeds", origins=[ORIGIN])
    other_site = await ctx.sites.create_site(
        organisation_id=other.id, name="Beta York", origins=["https://beta.example"]
    )

    async def principal(role: Role, org_id: str | None, sites: list[str]) -> Principal:
        user = await ctx.accounts.create_user(
            email=f"{role.value}-{secrets.token_hex(6)}@example.com",
            name=role.value.title(),
            role=role,
            password="correct horse battery",
            organisation_id=org_id,
            site_ids=sites,
        )
        async with ctx.db.session(Scope.system()) as s:
            loaded = await s.get(User, user.id)
            assert loaded is not None
            return await ctx.accounts.principal_for(loaded)

    operator = await principal(Role.OPERATOR, None, [site.id])
    stranger = await principal(Role.CLIENT, other.id, [other_site.id])
    await ctx.delivery_admin.add_destination(
        Scope.system(),
        organisation_id=org.id,
        kind="webhook",
        target="http://127.0.0.1:9/hook",
        region="UK",
    )
    return ctx, World(ctx, site, other_site, operator, stranger)


def run(database_url: str, body: Callable[[World], Awaitable[None]]) -> None:
    async def go() -> None:
        ctx, world = await _world(database_url)
        try:
            await body(world)
        finally:
            await ctx.stop()

    asyncio.run(go())


async def _chat(
    w: World, *, gpc: bool = False, actor: VisitorActor | None = None
) -> tuple[VisitorActor, str]:
    actor, view, _token = await w.ctx.chat.open_conversation(w.site, actor, None, gpc=gpc)
    ref = await w.ctx.chat.authorise(actor, view.id)
    await w.ctx.chat.post(actor, ref, f"hello-{view.id}", "Hi, is the Octavia still for sale?")
    await w.ctx.chat.accept(w.operator, ref)
    return actor, view.id


async def _details(w: World, conv: str) -> None:
    await w.ctx.leads.update_details(
        w.operator, conv, {"name": "Sam Example", "email": "sam@example.org"}
    )


async def _count(w: World, model: Any, *where: Any) -> int:
    async with w.ctx.db.session(Scope.system(), read_only=True) as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def _answer(w: World, actor: VisitorActor, conv: str, answer: str) -> None:
    state = await w.ctx.leads.consent_state(conv)
    assert state.request_id is not None
    await w.ctx.leads.answer_consent(actor, conv, state.request_id, answer)


@pytest.fixture(scope="module")
def db(database_url: str) -> Iterator[str]:
    yield database_url


def test_person_exists_only_after_details(db: str) -> None:
    async def body(w: World) -> None:
        _actor, conv = await _chat(w)
        assert await _count(w, Person, Person.site_id == w.site.id) == 0
        await _details(w, conv)
        assert await _count(w, Person, Person.site_id == w.site.id) == 1

    run(db, body)


def test_the_queues_name_the_visitor_once_the_operator_saved_a_name(db: str) -> None:
    async def body(w: World) -> None:
        _actor, conv = await _chat(w)
        events: list[dict[str, Any]] = []
        publish = w.ctx.broker.publish

        async def keep(event: Any) -> None:
            events.append(event.frame)
            await publish(event)

        w.ctx.broker.publish = keep  # type: ignore[method-assign]
        assert (await w.ctx.chat.view(w.operator, conv)).visitor_name is None
        await _details(w, conv)
        assert (await w.ctx.chat.view(w.operator, conv)).visitor_name == "Sam Example"
        (listed,) = [v for v in await w.ctx.chat.agent_conversations(w.operator) if v.id == conv]
        assert listed.visitor_name == "Sam Example"
        told = [
            f for f in events if f.get("type") == "conversation" and "visitor" in f["conversation"]
        ]
        assert told and told[-1]["conversation"]["visitor"]["name"] == "Sam Example"

        events.clear()
        await w.ctx.leads.update_details(w.operator, conv, {"email": "sam@example.net"})
        assert not [f for f in events if f.get("type") == "conversation"]  # no rename: no news

    run(db, body)


def test_no_delivery_without_consent_then_exactly_one_per_destination(db: str) -> None:
    async def body(w: World) -> None:
        actor, conv = await _chat(w)
        await _details(w, conv)
        lead = await w.ctx.leads.create_lead(w.operator, conv, purpose="test_drive")
        assert lead.delivery_state == "awaiting_consent"
        assert await _count(w, OutboxJob, OutboxJob.lead_id == lead.id) == 0
        with pytest.raises(ConsentRequired):
            await w.ctx.leads.deliver(w.operator, lead.id)
        await w.ctx.leads.request_consent(w.operator, conv)
        await _answer(w, actor, conv, "granted")
        assert await _count(w, OutboxJob, OutboxJob.lead_id == lead.id) == 1
        await _answer(w, actor, conv, "granted")  # a resend after reconnect changes nothing
        assert await _count(w, OutboxJob, OutboxJob.lead_id == lead.id) == 1

    run(db, body)


def test_withdrawal_stops_undelivered_leads_and_is_recorded(db: str) -> None:
    async def body(w: World) -> None:
        actor, conv = await _chat(w)
        await _details(w, conv)
        await w.ctx.leads.request_consent(w.operator, conv)
        await _answer(w, actor, conv, "granted")
        lead = await w.ctx.leads.create_lead(w.operator, conv, purpose="finance")
        assert lead.delivery_state == "queued"
        await _answer(w, actor, conv, "withdrawn")
        async with w.ctx.db.session(Scope.system(), read_only=True) as s:
            jobs = list(
                await s.scalars(select(OutboxJob.state).where(OutboxJob.lead_id == lead.id))
            )
            stored = await s.get(Lead, lead.id)
            answers = list(
                await s.scalars(
                    select(ConsentRecord.answer)
                    .where(ConsentRecord.conversation_id == conv)
                    .order_by(ConsentRecord.answered_at)
                )
            )
        assert jobs == ["canceled"]
        assert stored is not None and stored.delivery_state == "withdrawn"
        assert answers == ["granted", "withdrawn"]

    run(db, body)


def test_consent_can_be_withdrawn_after_the_chat_closed(db: str) -> None:
    """The consent text promises "at any time": a closed chat takes no new line, but the
    withdrawal is recorded and stops what was not delivered yet."""

    async def body(w: World) -> None:
        actor, conv = await _chat(w)
        await _details(w, conv)
        await w.ctx.leads.request_consent(w.operator, conv)
        await _answer(w, actor, conv, "granted")
        lead = await w.ctx.leads.create_lead(w.operator, conv, purpose="finance")
        await w.ctx.chat.close(w.operator, await w.ctx.chat.authorise(w.operator, conv))
        await _answer(w, actor, conv, "withdrawn")
        assert (await w.ctx.leads.consent_state(conv)).answer == "withdrawn"
        async with w.ctx.db.session(Scope.system(), read_only=True) as s:
            stored = await s.get(Lead, lead.id)
            record = await s.scalar(
                select(ConsentRecord).where(
                    ConsentRecord.conversation_id == conv, ConsentRecord.answer == "withdrawn"
                )
            )
        assert stored is not None and stored.delivery_state == "withdrawn"
        assert record is not None and record.message_seq is None

    run(db, body)


def test_consent_evidence_is_immutable_in_the_database(db: str) -> None:
    async def body(w: World) -> None:
        actor, conv = await _chat(w)
        await w.ctx.leads.request_consent(w.operator, conv)
        await _answer(w, actor, conv, "granted")
        async with w.ctx.db.session(Scope.system(), read_only=True) as s:
            record = (
                await s.scalars(select(ConsentRecord).where(ConsentRecord.conversation_id == conv))
            ).first()
            assert record is not None
        assert record.text_sha256 == hashlib.sha256(record.text.encode()).hexdigest()
        assert record.policy_version == w.site.policy_version
        with pytest.raises(Exception, match="immutable"):
            async with w.ctx.db.session(Scope.system()) as s:
                await s.execute(
                    text("UPDATE consent_records SET answer = 'denied' WHERE id = :id"),
                    {"id": record.id},
                )

    run(db, body)


def test_declining_keeps_the_chat_working(db: str) -> None:
    async def body(w: World) -> None:
        actor, conv = await _chat(w)
        await w.ctx.leads.request_consent(w.operator, conv)
        await _answer(w, actor, conv, "denied")
        ref = await w.ctx.chat.authorise(actor, conv)
        stored = await w.ctx.chat.post(actor, ref, "after-decline-1", "Fine, just questions then")
        assert stored.seq > 0
        await _details(w, conv)
        lead = await w.ctx.leads.create_lead(w.operator, conv, purpose="general")
        assert lead.delivery_state == "awaiting_consent"

    run(db, body)


def test_gpc_flag_travels_with_the_lead(db: str) -> None:
    async def body(w: World) -> None:
        actor, conv = await _chat(w, gpc=True)
        await _details(w, conv)
        await w.ctx.leads.request_consent(w.operator, conv)
        await _answer(w, actor, conv, "granted")
        lead = await w.ctx.leads.create_lead(w.operator, conv, purpose="purchase")
        assert lead.sale_share_opt_out is True
        async with w.ctx.db.session(Scope.system(), read_only=True) as s:
            snapshot = await lead_snapshot(s, lead.id)
        assert snapshot.sale_share_opt_out
        assert b"opt-out" in render_adf(snapshot).lower()

    run(db, body)


def test_returning_visitor_gets_earlier_details_only_when_chatting(db: str) -> None:
    async def body(w: World) -> None:
        actor, first = await _chat(w)
        await _details(w, first)
        ref = await w.ctx.chat.authorise(w.operator, first)
        await w.ctx.chat.close(w.operator, ref)
        # Day 2: the same visitor chats again; the earlier conversation and person come along.
        _actor, second = await _chat(w, actor=actor)
        panel = await w.ctx.lead_records.panel(w.operator, second)
        assert panel["person"]["email"] == "sam@example.org"
        assert [e["id"] for e in panel["earlier"]] == [first]
        assert panel["earlier"][0]["messages"][0]["text"].startswith("Hi, is the Octavia")

    run(db, body)


def test_minor_gets_no_lead_and_a_redacted_transcript(db: str) -> None:
    async def body(w: World) -> None:
        actor, conv = await _chat(w)
        ref = await w.ctx.chat.authorise(actor, conv)
        await w.ctx.chat.post(actor, ref, "minor-msg-1", "I'm 15, mail me at kid@example.org")
        await _details(w, conv)
        assert await w.ctx.leads.record_age(w.operator, conv, 15) is True
        with pytest.raises(InvalidState):
            await w.ctx.leads.create_lead(w.operator, conv, purpose="general")
        with pytest.raises(InvalidState):
            await _details(w, conv)
        async with w.ctx.db.session(Scope.system(), read_only=True) as s:
            texts = list(
                await s.scalars(select(Message.text).where(Message.conversation_id == conv))
            )
            person = (await s.scalars(select(Person).where(Person.site_id == w.site.id))).first()
        assert not any("kid@example.org" in t for t in texts)
        assert person is not None and person.email is None and person.minor
        assert await _count(w, Lead, Lead.site_id == w.site.id) == 0

    run(db, body)


def test_another_tenant_cannot_see_the_lead(db: str) -> None:
    async def body(w: World) -> None:
        actor, conv = await _chat(w)
        await _details(w, conv)
        await w.ctx.leads.request_consent(w.operator, conv)
        await _answer(w, actor, conv, "granted")
        lead = await w.ctx.leads.create_lead(w.operator, conv, purpose="service")
        with pytest.raises(NotFound):
            await w.ctx.lead_records.detail(w.stranger, lead.id)
        with pytest.raises(NotFound):
            await w.ctx.lead_records.panel(w.stranger, conv)
        assert (await w.ctx.lead_records.list(w.stranger))[0] == []

    run(db, body)


def test_enquiry_form_with_consent_becomes_a_released_lead(db: str) -> None:
    async def body(w: World) -> None:
        view = await w.ctx.chat.enquiry(w.site, "Pat Form", "pat@example.org", "Call me back")
        label = "I agree that Alpha Leeds may contact me about my enquiry"
        lead = await w.ctx.leads.from_enquiry(
            w.site,
            view.id,
            name="Pat Form",
            contact="pat@example.org",
            message="Call me back",
            consent_text=label,
        )
        assert lead is not None and lead.delivery_state == "queued"
        async with w.ctx.db.session(Scope.system(), read_only=True) as s:
            record = await s.get(ConsentRecord, lead.consent_id)
        assert record is not None and record.channel == "form" and record.text == label
        unticked = await w.ctx.chat.enquiry(w.site, "Al", "07400 123456", "Price?")
        held = await w.ctx.leads.from_enquiry(
            w.site,
            unticked.id,
            name="Al",
            contact="07400 123456",
            message="Price?",
            consent_text=None,
        )
        assert held is not None and held.delivery_state == "awaiting_consent"
        # The visitor is not in a chat: a question there would wait for ever.
        with pytest.raises(InvalidState, match="not in a chat"):
            await w.ctx.leads.request_consent(w.operator, unticked.id)

    run(db, body)


def test_gpc_seen_later_flags_the_known_person_and_never_unflags(db: str) -> None:
    """R14, R16: the signal first appears after the details were given (a later session)."""

    async def body(w: World) -> None:
        actor, view, token = await w.ctx.chat.open_conversation(w.site, None, None)
        conv = view.id
        await _details(w, conv)
        await w.ctx.leads.request_consent(w.operator, conv)
        await _answer(w, actor, conv, "granted")
        lead = await w.ctx.leads.create_lead(w.operator, conv, purpose="purchase")
        assert lead.sale_share_opt_out is False
        assert token is not None

        async def flags() -> tuple[bool, bool]:
            async with w.ctx.db.session(Scope.system(), read_only=True) as s:
                person = await s.scalar(select(Person).where(Person.visitor_id == actor.visitor_id))
                stored = await s.get(Lead, lead.id)
                assert person is not None and stored is not None
                return person.sale_share_opt_out, stored.sale_share_opt_out

        await w.ctx.chat.resume_visitor(w.site, token, gpc=True)  # session 2: GPC on
        assert await flags() == (True, True)
        await w.ctx.chat.resume_visitor(w.site, token)  # session 3: no signal, still opted out
        assert await flags() == (True, True)
        async with w.ctx.db.session(Scope.system(), read_only=True) as s:
            snapshot = await lead_snapshot(s, lead.id)
        assert b"opt-out" in render_adf(snapshot).lower()

    run(db, body)


def test_returning_browser_in_a_new_chat_session_gets_its_earlier_chat(db: str) -> None:
    """R24: day 2, the chat's session token is gone but the tracking cookie is the same."""
    from datetime import UTC, datetime

    from confide.tracking.events import parse_beacon
    from confide.tracking.service import Request

    cookie = secrets.token_urlsafe(16)
    browser = Request(ip="192.0.2.10", user_agent="Mozilla/5.0 Firefox/133.0", dnt=False, gpc=False)

    async def visit(w: World, path: str) -> str:
        visit_id = secrets.token_urlsafe(16)
        now = datetime.now(UTC)
        raw = {
            "site": w.site.key,
            "visit": visit_id,
            "visitor": cookie,
            "consent": "granted",
            "events": [{"type": "pageview", "url": path, "ts": int(now.timestamp() * 1000)}],
        }
        result = await w.ctx.tracking.ingest(w.site, parse_beacon(raw, now), browser)
        assert result.accepted == 1
        return visit_id

    async def body(w: World) -> None:
        day1 = await visit(w, "/used-cars/octavia")
        actor, view, _token = await w.ctx.chat.open_conversation(w.site, None, None, day1)
        ref = await w.ctx.chat.authorise(actor, view.id)
        await w.ctx.chat.post(actor, ref, "day1-1", "Is the Octavia still for sale?")
        await _details(w, view.id)

        day2 = await visit(w, "/used-cars/octavia/test-drive")
        detail = await w.ctx.tracking.visit_detail(Scope.system(), day2)
        assert detail.get("person") is None  # browsing: not re-identified
        again, second, _ = await w.ctx.chat.open_conversation(w.site, None, None, day2)
        assert again.visitor_id != actor.visitor_id  # a new chat session
        panel = await w.ctx.lead_records.panel(w.operator, second.id)
        assert panel["person"]["email"] == "sam@example.org"
        assert [e["id"] for e in panel["earlier"]] == [view.id]
        assert panel["earlier"][0]["messages"][0]["text"] == "Is the Octavia still for sale?"
        detail = await w.ctx.tracking.visit_detail(Scope.system(), day2)
        assert [p["path"] for p in detail["path"]] == ["/used-cars/octavia/test-drive"]

    run(db, body)


def test_a_person_is_created_only_when_details_are_typed_in_the_chat(db: str) -> None:
    """R23: before personal data, the visit is keyed by the pseudonymous visitor only; the
    first email or phone a visitor writes creates the person and attributes the visit."""
    from datetime import UTC, datetime

    from confide.tracking.events import parse_beacon
    from confide.tracking.models import Visit
    from confide.tracking.service import Request

    async def body(w: World) -> None:
        visit_id = secrets.token_urlsafe(16)
        now = datetime.now(UTC)
        raw = {
            "site": w.site.key,
            "visit": visit_id,
            "visitor": secrets.token_urlsafe(16),
            "consent": "granted",
            "events": [{"type": "pageview", "url": "/", "ts": int(now.timestamp() * 1000)}],
        }
        browser = Request(
            ip="192.0.2.7", user_agent="Mozilla/5.0 Firefox/133.0", dnt=False, gpc=False
        )
        assert (await w.ctx.tracking.ingest(w.site, parse_beacon(raw, now), browser)).accepted
        actor, view, _ = await w.ctx.chat.open_conversation(w.site, None, None, visit_id)
        ref = await w.ctx.chat.authorise(actor, view.id)
        await w.ctx.chat.post(actor, ref, "r23-1", "Hi, is the Octavia still for sale? Ring 2")
        await w.ctx.chat.settle()
        assert await _count(w, Person, Person.visitor_id == actor.visitor_id) == 0

        await w.ctx.chat.post(actor, ref, "r23-2", "Mail me at Sam@Example.org please")
        await w.ctx.chat.settle()
        async with w.ctx.db.session(Scope.system(), read_only=True) as s:
            people = list(
                await s.scalars(select(Person).where(Person.visitor_id == actor.visitor_id))
            )
            visit = await s.get(Visit, visit_id)
        assert len(people) == 1 and visit is not None and visit.person_id == people[0].id
        # the typed details are offered to the operator to confirm, not copied in unasked
        assert people[0].email is None
        suggested = await w.ctx.leads.suggestions(w.operator, view.id)
        assert [(x["field"], x["value"]) for x in suggested] == [("email", "Sam@example.org")]

        await w.ctx.leads.update_details(w.operator, view.id, {"email": "Sam@example.org"})
        await w.ctx.chat.post(actor, ref, "r23-3", "or sam@home.example, or 07911 123456")
        await w.ctx.chat.settle()
        async with w.ctx.db.session(Scope.system(), read_only=True) as s:
            person = await s.get(Person, people[0].id)
        assert person is not None and person.email == "Sam@example.org" and person.phone is None
        assert await _count(w, Person, Person.visitor_id == actor.visitor_id) == 1

    run(db, body)


def test_a_visitor_token_is_session_scoped(db: str) -> None:
    """R11: the chat token only lasts while the widget keeps connecting; a stale one is refused
    (the widget then drops it and the next chat gets a new one)."""
    from datetime import UTC, datetime, timedelta

    from confide.clock import frozen_at

    async def body(w: World) -> None:
        actor, view, token = await w.ctx.chat.open_conversation(w.site, None, None)
        frozen.advance(w.ctx.chat.visitor_session - timedelta(minutes=1))
        again, resumed = await w.ctx.chat.resume_visitor(w.site, token)
        assert again == actor and resumed is not None and resumed.id == view.id
        frozen.advance(w.ctx.chat.visitor_session + timedelta(minutes=1))  # idle too long
        assert await w.ctx.chat.resume_visitor(w.site, token) == (None, None)
        assert await w.ctx.chat.resume_visitor(w.other_site, token) == (None, None)

    with frozen_at(datetime.now(UTC)) as frozen:
        run(db, body)
