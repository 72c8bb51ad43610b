"""The privacy-request rules one by one, through the services on SQLite and PostgreSQL.

Lifecycle and review (R47, R53), one-time codes, the same answer for an unknown identity, opt-out
at once (R48), restriction (R55), correction sent to recipients (R52) and never verified with the
field being corrected (R47), authorised agents (R49), legal holds (R41), deadlines, extensions
and reminders (R46). Worlds and visitors are built as in ``test_rights_e2e.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

import confide.clock
from confide.audit.log import AuditLog
from confide.chat.models import Message
from confide.clock import FrozenClock, utcnow
from confide.delivery.models import OutboxJob
from confide.errors import Forbidden, InvalidInput, InvalidState, NotFound, RateLimited
from confide.ids import new_id
from confide.leads.models import Lead, Person, PersonChange
from confide.privacy import deadlines
from confide.privacy.lifecycle import State, move
from confide.privacy.models import ErasureTask, LegalHold, VerificationCode
from confide.privacy.notify import COMPLAINT_ROUTE
from confide.privacy.service import CODE_TTL, MAX_ATTEMPTS, MAX_RESENDS, Intake
from confide.storage.scope import Scope
from confide.testing import free_port
from tests.leads.helpers import SmtpSink
from tests.privacy.test_rights_e2e import (
    World,
    build_world,
    count,
    mailed_code,
    mails_to,
    run,
    seed_subject,
    verified_and_approved,
)


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    """Time stands still (every ``utcnow()`` in the process) until the test moves it."""
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    monkeypatch.setattr(confide.clock, "clock", clock)
    return clock


#: The subject of the email that carries a one-time code (apart from the acknowledgement).
CODE = "Your privacy request code"


def _unknown() -> str:
    return f"nobody-{new_id().lower()}@example.org"


# --- lifecycle -----------------------------------------------------------------------------------

ILLEGAL = [
    (State.RECEIVED, State.APPROVED),
    (State.RECEIVED, State.COMPLETE),
    (State.IDENTITY_UNVERIFIED, State.APPROVED),
    (State.IDENTITY_UNVERIFIED, State.COMPLETE),
    (State.PENDING, State.IN_PROCESSING),
    (State.PENDING, State.COMPLETE),
    (State.APPROVED, State.DENIED),
    (State.IN_PROCESSING, State.CANCELED),
    (State.COMPLETE, State.IN_PROCESSING),
    (State.COMPLETE, State.DENIED),
    (State.DENIED, State.APPROVED),
    (State.CANCELED, State.PENDING),
]


@pytest.mark.parametrize(("here", "there"), ILLEGAL, ids=lambda s: s.value)
def test_illegal_moves_raise(here: State, there: State) -> None:
    with pytest.raises(InvalidState, match=f"{here.value} cannot become {there.value}"):
        move(here.value, there, verified=True, kind="access")


@pytest.mark.parametrize(
    ("here", "there"),
    [
        (State.IDENTITY_UNVERIFIED, State.PENDING),
        (State.REQUIRES_INPUT, State.PENDING),
        (State.PENDING, State.APPROVED),
        (State.RECEIVED, State.IN_PROCESSING),
    ],
    ids=lambda s: s.value,
)
def test_nothing_is_decided_before_the_identity_is_verified(here: State, there: State) -> None:
    for kind in ("access", "deletion", "correction", "restriction"):
        with pytest.raises(InvalidState, match="not been verified"):
            move(here.value, there, verified=False, kind=kind)
        assert move(here.value, there, verified=True, kind=kind) is there


def test_an_opt_out_needs_no_verification() -> None:
    # An opt-out needs no verification (CCPA §7026).
    assert move("received", State.IN_PROCESSING, verified=False, kind="opt_out") is (
        State.IN_PROCESSING
    )


def test_review_follows_the_lifecycle(database_url: str, smtp: SmtpSink) -> None:
    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            sub = await seed_subject(w, lead=False)
            svc = w.ctx.privacy
            req = await svc.submit(w.org_id, Intake("access", email=sub.email))
            with pytest.raises(InvalidState):
                await svc.approve(w.client, req.id)  # identity_unverified cannot be approved
            with pytest.raises(InvalidInput, match="reason"):
                await svc.deny(w.client, req.id, "  ", "other")
            await svc.verify(req.id, mailed_code(smtp, sub.email))
            with pytest.raises(InvalidState):
                await svc.verify(req.id, "000000")  # no longer waiting for a code
            with pytest.raises(Forbidden):
                await svc.approve(w.operator, req.id)  # the controller decides, not the operator
            done = await svc.approve(w.client, req.id)
            assert done.state == "complete"
            for again in (
                svc.approve(w.client, req.id),
                svc.deny(w.client, req.id, "Too late", "other"),
            ):
                with pytest.raises(InvalidState, match="complete cannot become"):
                    await again

            other = await svc.submit(w.org_id, Intake("deletion", email=sub.email))
            await svc.verify(other.id, mailed_code(smtp, sub.email))
            with pytest.raises(InvalidInput, match="basis of the refusal"):
                await svc.deny(w.client, other.id, "Records kept for a warranty claim")
            denied = await svc.deny(
                w.client, other.id, "Records kept for a warranty claim", "legal_claims"
            )
            assert denied.state == "denied" and denied.contact is None
            assert denied.denial_basis == "legal_claims"
            answer = mails_to(smtp, sub.email)[-1]
            assert "Records kept for a warranty claim" in answer and COMPLAINT_ROUTE in answer
            assert "the information is needed for legal claims" in answer
            assert await count(w, Person, Person.id == sub.person_id) == 1
        finally:
            await w.ctx.stop()

    run(go())


# --- verification codes --------------------------------------------------------------------------


def test_five_wrong_codes_lock_the_code(database_url: str, smtp: SmtpSink) -> None:
    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            sub = await seed_subject(w, lead=False)
            req = await w.ctx.privacy.submit(w.org_id, Intake("deletion", email=sub.email))
            code = mailed_code(smtp, sub.email)
            wrong = f"{(int(code) + 1) % 1_000_000:06d}"
            for _ in range(MAX_ATTEMPTS):
                with pytest.raises(InvalidInput, match="not right or has expired"):
                    await w.ctx.privacy.verify(req.id, wrong)
            with pytest.raises(InvalidInput, match="not right or has expired"):
                await w.ctx.privacy.verify(req.id, code)  # the right code, too late
            loaded = await w.ctx.privacy.detail(w.client, req.id)
            assert loaded["state"] == "identity_unverified"
            assert loaded["identity_verified_at"] is None
            assert await count(w, Person, Person.id == sub.person_id) == 1
        finally:
            await w.ctx.stop()

    run(go())


def test_an_expired_code_is_refused_and_a_new_one_works(
    database_url: str, smtp: SmtpSink, frozen: FrozenClock
) -> None:
    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            sub = await seed_subject(w, lead=False)
            req = await w.ctx.privacy.submit(w.org_id, Intake("access", email=sub.email))
            code = mailed_code(smtp, sub.email)
            frozen.advance(CODE_TTL + timedelta(seconds=1))
            with pytest.raises(InvalidInput, match="not right or has expired"):
                await w.ctx.privacy.verify(req.id, code)
            await w.ctx.privacy.resend_code(req.id)
            fresh = mailed_code(smtp, sub.email)
            verified = await w.ctx.privacy.verify(req.id, fresh)
            assert verified.state == "pending"
        finally:
            await w.ctx.stop()

    run(go())


def test_an_unknown_identity_gets_the_same_answer_and_no_code(
    database_url: str, smtp: SmtpSink, frozen: FrozenClock
) -> None:
    texts: list[tuple[str, str]] = []

    async def go() -> None:
        w = await build_world(database_url, smtp, sms=lambda to, text: texts.append((to, text)))
        try:
            sub = await seed_subject(w, lead=False)
            nobody = _unknown()
            known = await w.ctx.privacy.submit(w.org_id, Intake("access", email=sub.email))
            unknown = await w.ctx.privacy.submit(w.org_id, Intake("access", email=nobody))
            assert known.state == unknown.state == "identity_unverified"
            assert unknown.person_ids == [] and known.person_ids == [sub.person_id]
            assert await count(w, VerificationCode, VerificationCode.request_id == unknown.id) == 0
            ack = [m for m in smtp.messages if m["To"] == sub.email and m["Subject"] != CODE]
            (to_nobody,) = [m for m in smtp.messages if m["To"] == nobody]
            assert ack[-1]["Subject"] == to_nobody["Subject"]
            assert ack[-1].get_content() == to_nobody.get_content()
            assert "Your code" not in to_nobody.get_content()  # no code for a stranger
            code = mailed_code(smtp, sub.email)  # the code goes to the address on file
            with pytest.raises(InvalidInput, match="not right or has expired"):
                await w.ctx.privacy.verify(unknown.id, code)
            # By phone: the same state, and nothing is texted to a number we do not hold.
            by_phone = await w.ctx.privacy.submit(w.org_id, Intake("access", phone="07400 000 222"))
            assert by_phone.state == "identity_unverified" and texts == []
        finally:
            await w.ctx.stop()

    run(go())


# --- opt-out and restriction ----------------------------------------------------------------------


def test_an_opt_out_applies_at_once_without_verification(database_url: str, smtp: SmtpSink) -> None:
    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            sub = await seed_subject(w)
            req = await w.ctx.privacy.submit(w.org_id, Intake("opt_out", email=sub.email))
            assert req.state == "complete" and req.identity_verified_at is None
            assert req.due_at <= deadlines.add_business_days(req.received_at, 15)
            assert await count(w, VerificationCode, VerificationCode.request_id == req.id) == 0
            async with w.ctx.db.session(Scope.system(), read_only=True) as s:
                person = await s.get(Person, sub.person_id)
                lead = await s.get(Lead, sub.lead_id)
            assert person is not None and person.sale_share_opt_out
            assert lead is not None and lead.sale_share_opt_out
        finally:
            await w.ctx.stop()

    run(go())


def test_a_marketing_objection_travels_with_every_later_lead(
    database_url: str, smtp: SmtpSink
) -> None:
    """R30: once objected, each lead the dealer receives says so (ADF comments, email,
    webhook) and the leads CSV marks it."""

    async def go() -> None:
        from confide.leads.snapshots import lead_snapshot

        w = await build_world(database_url, smtp)
        try:
            sub = await seed_subject(w)
            assert sub.lead_id is not None
            req = await w.ctx.privacy.submit(w.org_id, Intake("object_marketing", email=sub.email))
            await w.ctx.privacy.verify(req.id, mailed_code(smtp, sub.email))
            done = await w.ctx.privacy.approve(w.client, req.id)
            assert done.state == "complete"
            async with w.ctx.db.session(Scope.system(), read_only=True) as s:
                snapshot = await lead_snapshot(s, sub.lead_id)
            assert snapshot.marketing_objection
            csv_text = await w.ctx.lead_records.csv_export(w.client)
            header, *rows = csv_text.splitlines()
            assert header.endswith(",marketing_objection") and rows[0].endswith(",yes")
        finally:
            await w.ctx.stop()

    run(go())


def test_restriction_stops_every_later_hand_off(database_url: str, smtp: SmtpSink) -> None:
    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            sub = await seed_subject(w, consent=False)  # a lead waiting for consent
            assert sub.lead_id is not None
            done = await verified_and_approved(w, Intake("restriction", email=sub.email))
            assert done.state == "complete"
            ctx, conv = w.ctx, sub.conversation_id
            await ctx.leads.request_consent(w.operator, conv)
            state = await ctx.leads.consent_state(conv)
            assert state.request_id is not None
            await ctx.leads.answer_consent(sub.actor, conv, state.request_id, "granted")
            later = await ctx.leads.create_lead(w.operator, conv, purpose="finance")
            await ctx.leads.deliver(w.client, sub.lead_id)
            for lead_id in (sub.lead_id, later.id):
                assert await count(w, OutboxJob, OutboxJob.lead_id == lead_id) == 0
            async with ctx.db.session(Scope.system(), read_only=True) as s:
                person = await s.get(Person, sub.person_id)
                states = set(
                    await s.scalars(
                        select(Lead.delivery_state).where(Lead.person_id == sub.person_id)
                    )
                )
            assert person is not None and person.restricted
            assert states == {"withdrawn"}  # stored only: the rows remain
            with pytest.raises(NotFound):  # withdrawn: not the client's to pass on
                await ctx.lead_records.forward(
                    w.client,
                    later.id,
                    recipient_name="Northern Finance Ltd",
                    recipient_contact="deals@northern-finance.example",
                    reason="The visitor asked for a finance quote.",
                )
        finally:
            await w.ctx.stop()

    run(go())


# --- correction ----------------------------------------------------------------------------------


def test_a_phone_correction_keeps_history_and_goes_to_each_recipient(
    database_url: str, smtp: SmtpSink
) -> None:
    async def go() -> None:
        w = await build_world(database_url, smtp, destinations=2)
        try:
            sub = await seed_subject(w)
            late = await w.ctx.delivery_admin.add_destination(
                Scope.system(),
                organisation_id=w.org_id,
                kind="email",
                target=f"late-{new_id().lower()}@dealer.example",
                region="UK",
            )  # added after the lead went out: it never received it
            # the visitor had also typed the (now wrong) number in the chat
            await w.ctx.chat.post(sub.actor, sub.ref, f"ph-{new_id()}", f"Ring {sub.phone_typed}")
            req = await verified_and_approved(
                w, Intake("correction", email=sub.email, details="phone: 07400 777 888")
            )
            assert req.state == "complete"
            async with w.ctx.db.session(Scope.system(), read_only=True) as s:
                person = await s.get(Person, sub.person_id)
                changes = list(
                    await s.scalars(
                        select(PersonChange)
                        .where(
                            PersonChange.person_id == sub.person_id,
                            PersonChange.field_name == "phone",
                        )
                        .order_by(PersonChange.id)
                    )
                )
                jobs = list(
                    await s.scalars(
                        select(OutboxJob).where(
                            OutboxJob.lead_id == sub.lead_id, OutboxJob.event == "lead.corrected"
                        )
                    )
                )
            assert person is not None and person.phone == "+447400777888"
            assert person.phone_index == w.ctx.db.vault.blind_index("phone", "+447400777888")
            # every change keeps its record, but the inaccurate values are gone (R52) ...
            assert [(c.value, c.source) for c in changes] == [
                ("[corrected]", "operator"),
                ("[corrected]", "operator"),
                ("+447400777888", "request"),
            ]
            # ... from the transcript too: it shows [corrected] where the number was typed
            async with w.ctx.db.session(Scope.system(), read_only=True) as s:
                texts = list(
                    await s.scalars(
                        select(Message.text).where(Message.conversation_id == sub.ref.id)
                    )
                )
            transcript = "\n".join(texts)
            assert "Ring [corrected]" in transcript
            assert sub.phone_typed not in transcript and sub.old_phone_typed not in transcript
            assert sorted(j.destination_id for j in jobs) == sorted(w.destination_ids)
            assert late.destination["id"] not in {j.destination_id for j in jobs}
            before = len(smtp.messages)
            await w.ctx.delivery.drain()
            resent = [m for m in smtp.messages[before:] if m["Subject"].startswith("Corrected")]
            assert len(resent) == len(w.destination_ids)
        finally:
            await w.ctx.stop()

    run(go())


def test_an_email_correction_is_verified_by_the_phone(database_url: str, smtp: SmtpSink) -> None:
    texts: list[tuple[str, str]] = []

    async def go() -> None:
        w = await build_world(database_url, smtp, sms=lambda to, text: texts.append((to, text)))
        try:
            sub = await seed_subject(w, lead=False)
            new_email = f"new-{new_id().lower()}@example.org"
            mails_before = len(mails_to(smtp, sub.email))
            req = await w.ctx.privacy.submit(
                w.org_id,
                Intake(
                    "correction",
                    email=sub.email,
                    phone=sub.phone_typed,
                    details=f"email: {new_email}",
                ),
            )
            assert req.state == "identity_unverified"
            acks = mails_to(smtp, sub.email)[mails_before:]
            assert len(acks) == 1 and "Your code" not in acks[0]  # not by the field corrected
            ((to, text),) = texts
            assert to == sub.phone
            code = re.search(r"\d{6}", text)
            assert code
            await w.ctx.privacy.verify(req.id, code.group(0))
            done = await w.ctx.privacy.approve(w.client, req.id)
            assert done.state == "complete"
            async with w.ctx.db.session(Scope.system(), read_only=True) as s:
                person = await s.get(Person, sub.person_id)
            assert person is not None and person.email == new_email
            assert person.email_index == w.ctx.db.vault.blind_index("email", new_email)
        finally:
            await w.ctx.stop()

    run(go())


def test_codes_and_results_go_only_to_contacts_on_file(database_url: str, smtp: SmtpSink) -> None:
    """Someone who types a person's phone number and their own email gets neither the code nor
    the export link: both go to what we hold for the person (R47)."""
    texts: list[tuple[str, str]] = []

    async def go() -> None:
        w = await build_world(database_url, smtp, sms=lambda to, text: texts.append((to, text)))
        try:
            sub = await seed_subject(w, lead=False)
            stranger = _unknown()
            req = await w.ctx.privacy.submit(
                w.org_id, Intake("access", email=stranger, phone=sub.phone_typed)
            )
            assert req.person_ids == [sub.person_id]  # matched by the phone alone
            ((to, text),) = texts
            assert to == sub.phone  # the number on file
            code = re.search(r"\d{6}", text)
            assert code
            await w.ctx.privacy.verify(req.id, code.group(0))
            done = await w.ctx.privacy.approve(w.client, req.id)
            assert done.state == "complete"
            to_stranger = mails_to(smtp, stranger)
            assert len(to_stranger) == 1  # the acknowledgement only
            assert "Your code" not in to_stranger[0] and "token=" not in to_stranger[0]
            to, text = texts[-1]
            assert to == sub.phone and "token=" in text  # the link, by text, to the number held
        finally:
            await w.ctx.stop()

    run(go())


def test_an_email_correction_code_goes_to_the_phone_on_file(
    database_url: str, smtp: SmtpSink
) -> None:
    """Not to a number typed on the form: that would let anyone who knows the email redirect
    it (R47)."""
    texts: list[tuple[str, str]] = []

    async def go() -> None:
        w = await build_world(database_url, smtp, sms=lambda to, text: texts.append((to, text)))
        try:
            sub = await seed_subject(w, lead=False)
            await w.ctx.privacy.submit(
                w.org_id,
                Intake(
                    "correction",
                    email=sub.email,
                    phone="07400 000 111",
                    details="email: thief@example.org",
                ),
            )
            assert [to for to, _ in texts] == [sub.phone]
        finally:
            await w.ctx.stop()

    run(go())


# --- authorised agents ---------------------------------------------------------------------------


def test_an_agent_needs_a_written_designation(database_url: str, smtp: SmtpSink) -> None:
    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            sub = await seed_subject(w, lead=False)
            svc = w.ctx.privacy
            bare = await svc.submit(w.org_id, Intake("access", email=sub.email, channel="agent"))
            assert bare.state == "requires_input"
            assert await count(w, VerificationCode, VerificationCode.request_id == bare.id) == 0
            with pytest.raises(InvalidState):
                await svc.verify(bare.id, "123456")
            with pytest.raises(InvalidInput):
                await svc.provide_designation(bare.id, "me")
            given = await svc.provide_designation(
                bare.id, "Ann Agent, 1 High St, Leeds; signed permission attached"
            )
            assert given.state == "identity_unverified"
            await svc.verify(bare.id, mailed_code(smtp, sub.email))

            with_one = await svc.submit(
                w.org_id,
                Intake(
                    "access",
                    email=sub.email,
                    channel="agent",
                    agent_designation="Ann Agent, 1 High St, Leeds; signed permission attached",
                ),
            )
            assert with_one.state == "identity_unverified"
        finally:
            await w.ctx.stop()

    run(go())


def test_an_agents_code_goes_to_the_person_on_file(database_url: str, smtp: SmtpSink) -> None:
    """R49: without a power of attorney the person confirms directly, on a contact we hold."""
    texts: list[tuple[str, str]] = []

    async def go() -> None:
        w = await build_world(database_url, smtp, sms=lambda to, text: texts.append((to, text)))
        try:
            sub = await seed_subject(w, lead=False)
            agent = _unknown()
            req = await w.ctx.privacy.submit(
                w.org_id,
                Intake("access", email=agent, phone=sub.phone_typed, channel="agent"),
            )
            assert req.state == "requires_input" and req.person_ids == [sub.person_id]
            await w.ctx.privacy.provide_designation(
                req.id, "Ann Agent, 1 High St, Leeds; signed permission attached"
            )
            assert not any("Your code" in body for body in mails_to(smtp, agent))
            by_text = [to for to, _ in texts] == [sub.phone]
            by_mail = any("Your code" in body for body in mails_to(smtp, sub.email))
            assert by_text != by_mail  # exactly one channel, and one the person holds
            # The person confirms the agent too: the code says who claims to act for them.
            told = texts[0][1] if by_text else mails_to(smtp, sub.email)[-1]
            assert "Ann Agent, 1 High St, Leeds" in told and "agent" in told.lower()
        finally:
            await w.ctx.stop()

    run(go())


def test_a_power_of_attorney_does_not_send_results_to_the_address_typed(
    database_url: str, smtp: SmtpSink
) -> None:
    """R49 with a POA skips the person's confirmation, so the answer must go to contact
    details we hold for them: someone claiming a POA with the victim's phone number and their
    own email address gets nothing."""

    texts: list[tuple[str, str]] = []

    async def go() -> None:
        w = await build_world(database_url, smtp, sms=lambda to, text: texts.append((to, text)))
        try:
            sub = await seed_subject(w, lead=False)
            stranger = _unknown()
            req = await w.ctx.privacy.submit(
                w.org_id,
                Intake(
                    "access",
                    email=stranger,
                    phone=sub.phone_typed,
                    channel="agent",
                    agent_designation="Sam Agent, 2 Low St, York; power of attorney attached",
                    power_of_attorney=True,
                ),
            )
            assert req.state == "pending" and req.person_ids == [sub.person_id]
            await w.ctx.privacy.approve(w.client, req.id)
            assert not any("ready" in body for body in mails_to(smtp, stranger))
            # The phone number matched the person on file: the link goes there.
            assert any(to == sub.phone and "Your copy of the information" in t for to, t in texts)
        finally:
            await w.ctx.stop()

    run(go())


def test_an_acknowledgement_the_relay_refused_is_sent_later(
    database_url: str, smtp: SmtpSink
) -> None:
    """R45: acknowledged means sent; a phone-only request is acknowledged by text."""
    texts: list[tuple[str, str]] = []

    async def go() -> None:
        w = await build_world(database_url, smtp, sms=lambda to, text: texts.append((to, text)))
        try:
            sub = await seed_subject(w, lead=False)
            settings = w.ctx.privacy.mailer.settings
            working = settings.smtp_port
            settings.smtp_port = free_port()  # nothing listens there: the relay is down
            try:
                req = await w.ctx.privacy.submit(w.org_id, Intake("access", email=sub.email))
            finally:
                settings.smtp_port = working
            assert req.acknowledged_at is None
            await w.ctx.privacy.remind()
            again = await w.ctx.privacy.detail(w.client, req.id)
            assert again["acknowledged_at"] is not None
            (ack,) = [b for b in mails_to(smtp, sub.email) if "How it works" in b]
            assert "You can expect our answer by" in ack

            by_phone = await w.ctx.privacy.submit(
                w.org_id, Intake("deletion", phone=sub.phone_typed)
            )
            assert by_phone.acknowledged_at is not None
            # A number on file gets the code by text, saying how it works and when we answer.
            ((to, text),) = texts
            assert to == sub.phone and "within 10 minutes; we answer by" in text
        finally:
            await w.ctx.stop()

    run(go())


# --- legal hold ----------------------------------------------------------------------------------


async def _hold(w: World, person_id: str) -> None:
    """A legal hold on the person, with its owner, reason and review date (R41)."""
    async with w.ctx.db.session(Scope.system()) as s:
        s.add(
            LegalHold(
                id=new_id(),
                organisation_id=w.org_id,
                target_kind="person",
                target_id=person_id,
                owner="Legal team",
                reason="warranty litigation",
                review_at=utcnow() + timedelta(days=90),
                created_at=utcnow(),
            )
        )


def test_a_legal_hold_makes_the_deletion_partial(database_url: str, smtp: SmtpSink) -> None:
    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            sub = await seed_subject(w)
            await _hold(w, sub.person_id)
            done = await verified_and_approved(w, Intake("deletion", email=sub.email))
            assert done.state == "complete" and done.partial
            assert done.denial_basis == "legal_obligation"  # R41: the refusal in part, coded
            async with w.ctx.db.session(Scope.system(), read_only=True) as s:
                tasks = list(
                    await s.scalars(select(ErasureTask).where(ErasureTask.request_id == done.id))
                )
                person = await s.get(Person, sub.person_id)
            data_tasks = [t for t in tasks if t.method != "notice"]
            assert data_tasks and all(t.state == "skipped" for t in data_tasks)
            assert all("legal hold" in (t.reason or "") for t in data_tasks)
            assert person is not None and person.email == sub.email  # kept, and readable
            assert w.ctx.db.vault.store.subject_key(sub.actor.visitor_id) is not None
            answer = mails_to(smtp, sub.email)[-1]
            assert "legal hold" in answer and COMPLAINT_ROUTE in answer
            # Nothing was erased, so no recipient is told it was.
            assert not [t for t in tasks if t.method == "notice"]
            notices = await count(
                w, OutboxJob, OutboxJob.event == "lead.erased", OutboxJob.subject_ref == sub.lead_id
            )
            assert notices == 0
        finally:
            await w.ctx.stop()

    run(go())


# --- deadlines -----------------------------------------------------------------------------------


def _at(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (_at(2025, 1, 31), _at(2025, 2, 28)),
        (_at(2024, 1, 31), _at(2024, 2, 29)),
        (_at(2025, 3, 15), _at(2025, 4, 15)),
        (_at(2025, 8, 31), _at(2025, 9, 30)),
        (_at(2025, 12, 31), _at(2026, 1, 31)),
    ],
)
def test_gdpr_due_is_one_calendar_month(received: datetime, due: datetime) -> None:
    for kind in ("access", "deletion", "correction", "restriction"):
        assert deadlines.due(received, "gdpr", kind) == due


def test_ccpa_due_is_45_days_and_opt_out_15_business_days() -> None:
    received = _at(2025, 1, 3)  # a Friday
    assert deadlines.due(received, "ccpa", "access") == received + timedelta(days=45)
    assert deadlines.extended(received, "ccpa") == received + timedelta(days=90)
    assert deadlines.extended(received, "gdpr") == _at(2025, 4, 3)
    for regime in deadlines.REGIMES:
        opt_out = deadlines.due(received, regime, "opt_out")
        assert opt_out == _at(2025, 1, 24)  # 3 working weeks later
        assert opt_out.weekday() < 5 and opt_out <= received + timedelta(days=21)


def test_an_extension_is_granted_once_within_the_first_period(
    database_url: str, smtp: SmtpSink, frozen: FrozenClock
) -> None:
    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            sub = await seed_subject(w, lead=False)
            svc = w.ctx.privacy
            gdpr = await svc.submit(w.org_id, Intake("access", email=sub.email))
            ccpa = await svc.submit(w.org_id, Intake("access", email=sub.email, regime="ccpa"))
            with pytest.raises(InvalidInput):
                await svc.extend(w.client, gdpr.id, "")
            frozen.advance(timedelta(days=20))
            longer = await svc.extend(w.client, gdpr.id, "Archive retrieval takes weeks")
            assert longer.extended_due_at == deadlines.add_months(gdpr.received_at, 3)
            notice = mails_to(smtp, sub.email)[-1]
            assert "Archive retrieval takes weeks" in notice
            assert longer.extended_due_at.date().isoformat() in notice
            with pytest.raises(InvalidState, match="already extended"):
                await svc.extend(w.client, gdpr.id, "Still more time please")
            frozen.advance(timedelta(days=30))  # day 50: past CCPA's first 45 days
            with pytest.raises(InvalidState, match="within the first period"):
                await svc.extend(w.client, ccpa.id, "Archive retrieval takes weeks")
        finally:
            await w.ctx.stop()

    run(go())


def test_reminders_at_half_and_four_fifths_of_the_time(database_url: str, smtp: SmtpSink) -> None:
    async def go() -> None:
        w = await build_world(database_url, smtp, clients=2)
        try:
            sub = await seed_subject(w, lead=False)
            req = await w.ctx.privacy.submit(w.org_id, Intake("deletion", email=sub.email))
            span = req.due_at - req.received_at

            def reminders() -> dict[str, list[str]]:
                return {
                    to: [b for b in mails_to(smtp, to) if req.id in b] for to in w.client_emails
                }

            for share, mark in ((0.4, ""), (0.55, "50 %"), (0.6, ""), (0.85, "80 %")):
                before = reminders()
                await w.ctx.privacy.remind(now=req.received_at + span * share)
                await w.ctx.privacy.remind(now=req.received_at + span * share)  # no repeat
                after = reminders()
                for to in w.client_emails:
                    new = after[to][len(before[to]) :]
                    assert len(new) == (1 if mark else 0), (share, to, new)
                    assert all(mark in body for body in new)
        finally:
            await w.ctx.stop()

    run(go())


def test_links_in_emails_use_the_link_base_without_a_public_url(
    database_url: str, smtp: SmtpSink
) -> None:
    """`confide demo` sets no public URL (pages take it from each request) but its emails'
    links must still be absolute: the code email links the request page."""

    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            sub = await seed_subject(w, lead=False)
            settings = w.ctx.privacy.settings
            saved = settings.public_url, settings.email_link_base
            settings.public_url, settings.email_link_base = "", "http://localhost:8000"
            try:
                req = await w.ctx.privacy.submit(w.org_id, Intake("access", email=sub.email))
            finally:
                settings.public_url, settings.email_link_base = saved
            (mail,) = [b for b in mails_to(smtp, sub.email) if "Your code" in b]
            assert f"http://localhost:8000/privacy/requests/{req.id}" in mail
            assert "within 10 minutes" in mail
        finally:
            await w.ctx.stop()

    run(go())


# --- degrees of certainty (R47, CCPA §7062) ----------------------------------------------------


def test_a_copy_under_ccpa_needs_three_matching_details_and_a_declaration(
    database_url: str, smtp: SmtpSink
) -> None:
    """The code proves the email (1); the phone on file makes 2: not enough for specific pieces,
    so the request waits for more and cannot be approved; the name and the signed declaration
    make 3, and it goes to the client for review."""

    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            sub = await seed_subject(w, lead=False)
            svc = w.ctx.privacy
            with pytest.raises(InvalidInput, match="Sign the declaration"):
                await svc.submit(
                    w.org_id, Intake("access", email=sub.email, regime="ccpa", declaration=True)
                )
            intake = Intake("access", email=sub.email, phone=sub.phone, regime="ccpa")
            req = await svc.submit(w.org_id, intake)
            assert req.access_scope == "specific"
            short = await svc.verify(req.id, mailed_code(smtp, sub.email))
            assert (short.state, short.data_points) == ("requires_input", 2)
            with pytest.raises(InvalidState):
                await svc.approve(w.client, req.id)  # two details are not enough for a copy
            shown = await svc.detail(w.client, req.id)
            assert shown["needs"] == "3 details that match what we hold and your signed declaration"

            wrong = await svc.add_identity_details(req.id, name="Somebody Else")
            assert (wrong.state, wrong.data_points) == ("requires_input", 2)
            named = await svc.add_identity_details(req.id, name=f"  {sub.name.upper()} ")
            assert (named.state, named.data_points) == ("requires_input", 3)  # not signed yet
            signed = await svc.add_identity_details(req.id, declaration=True)
            assert (signed.state, signed.declared_at is not None) == ("pending", True)
            with pytest.raises(InvalidState, match="not waiting for more details"):
                await svc.add_identity_details(req.id, name=sub.name)
            done = await svc.approve(w.client, req.id)
            assert done.state == "complete" and done.identity_facts is None  # cleared
        finally:
            await w.ctx.stop()

    run(go())


def test_categories_under_ccpa_need_two_details_and_show_no_values(
    database_url: str, smtp: SmtpSink
) -> None:
    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            sub = await seed_subject(w, lead=False)
            svc = w.ctx.privacy
            intake = Intake(
                "access", email=sub.email, regime="ccpa", access_scope="categories", name=sub.name
            )
            req = await svc.submit(w.org_id, intake)
            verified = await svc.verify(req.id, mailed_code(smtp, sub.email))
            assert (verified.state, verified.data_points) == ("pending", 2)
            await svc.approve(w.client, req.id)
            link = re.search(r"token=([\w-]+)", mails_to(smtp, sub.email)[-1])
            assert link is not None
            package = await svc.export_package(req.id, link.group(1))
            assert package["manifest"]["scope"] == "categories" and "data" not in package
            kinds = package["categories"]
            assert kinds["persons"]["records"] == 1
            assert {"user.name", "user.contact.email"} <= set(kinds["persons"]["categories"])
            assert "user.content.message" in kinds["conversations"]["categories"]
            dumped = repr(package)
            for value in (sub.email, sub.name, sub.phone, sub.words):
                assert value not in dumped  # the kinds of data, not the data
            trail = await AuditLog(w.ctx.db).trail(Scope.system(), limit=5)
            download = next(e for e in trail if e["action"] == "privacy_request.export_download")
            assert (download["subject_ref"], download["actor_role"]) == (req.id, "data_subject")
        finally:
            await w.ctx.stop()

    run(go())


def test_a_ccpa_deletion_needs_two_details_and_gdpr_the_code(
    database_url: str, smtp: SmtpSink
) -> None:
    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            sub = await seed_subject(w, lead=False)
            svc = w.ctx.privacy
            ccpa = await svc.submit(w.org_id, Intake("deletion", email=sub.email, regime="ccpa"))
            waiting = await svc.verify(ccpa.id, mailed_code(smtp, sub.email))
            assert (waiting.state, waiting.data_points) == ("requires_input", 1)
            with pytest.raises(InvalidInput, match="Only an access request"):
                await svc.add_identity_details(ccpa.id, access_scope="categories")
            more = await svc.add_identity_details(ccpa.id, name=sub.name)
            assert more.state == "pending"
            assert await count(w, Person, Person.id == sub.person_id) == 1  # nothing done yet

            gdpr = await svc.submit(w.org_id, Intake("deletion", email=sub.email))
            assert (await svc.verify(gdpr.id, mailed_code(smtp, sub.email))).state == "pending"
        finally:
            await w.ctx.stop()

    run(go())


def test_the_code_proves_only_the_person_it_was_sent_to(database_url: str, smtp: SmtpSink) -> None:
    """Alice gives her email and Bob's phone: the code to her email proves Alice, not Bob; her
    export holds nothing of his and her erasure leaves him whole."""

    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            alice = await seed_subject(w, lead=False)
            bob = await seed_subject(w, lead=False)
            svc = w.ctx.privacy
            for kind in ("access", "deletion"):
                intake = Intake(kind, email=alice.email, phone=bob.phone)
                req = await svc.submit(w.org_id, intake)
                assert mails_to(smtp, bob.email) == []  # nothing goes to Bob either
                verified = await svc.verify(req.id, mailed_code(smtp, alice.email))
                assert verified.person_ids == [alice.person_id]
                assert bob.actor.visitor_id not in verified.visitor_ids
                await svc.approve(w.client, req.id)
                if kind == "access":
                    link = re.search(r"token=([\w-]+)", mails_to(smtp, alice.email)[-1])
                    assert link is not None
                    package = await svc.export_package(req.id, link.group(1))
                    dumped = repr(package)
                    assert alice.email in dumped
                    for value in (bob.email, bob.name, bob.words):
                        assert value not in dumped
            assert await count(w, Person, Person.id == alice.person_id) == 0
            assert await count(w, Person, Person.id == bob.person_id) == 1
        finally:
            await w.ctx.stop()

    run(go())


def test_a_correction_that_cannot_be_applied_fails_visibly(
    database_url: str, smtp: SmtpSink
) -> None:
    """An invalid new value is refused when the request is made; one valid where the request
    was made but not for the person's site (a US ZIP code for a UK dealer's customer) leaves the
    request in ``error`` with the reason, not stuck as approved."""

    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            sub = await seed_subject(w, lead=False)
            svc = w.ctx.privacy
            with pytest.raises(InvalidInput, match="phone number is not valid"):
                await svc.submit(
                    w.org_id, Intake("correction", email=sub.email, details="phone: 123")
                )
            intake = Intake(
                "correction",
                email=sub.email,
                details="postcode: 90210",
                regime="ccpa",
                name=sub.name,
            )
            req = await svc.submit(w.org_id, intake)
            assert (await svc.verify(req.id, mailed_code(smtp, sub.email))).state == "pending"
            failed = await svc.approve(w.client, req.id)
            assert failed.state == "error"
            shown = await svc.detail(w.client, req.id)
            assert "not a UK postcode" in shown["events"][-1]["note"]
        finally:
            await w.ctx.stop()

    run(go())


def test_an_agents_code_by_email_names_the_agent(database_url: str, smtp: SmtpSink) -> None:
    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            sub = await seed_subject(w, lead=False)
            designation = "Ben Broker, 9 Mill Lane, York, ben@brokers.example: signed mandate"
            await w.ctx.privacy.submit(
                w.org_id,
                Intake("deletion", email=sub.email, channel="agent", agent_designation=designation),
            )
            code_mail = next(b for b in reversed(mails_to(smtp, sub.email)) if "Your code" in b)
            assert designation in code_mail
            assert "only if you asked them to act for you" in code_mail
        finally:
            await w.ctx.stop()

    run(go())


def test_codes_stop_after_a_few_resends_known_or_not(database_url: str, smtp: SmtpSink) -> None:
    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            sub = await seed_subject(w, lead=False)
            svc = w.ctx.privacy
            for email in (sub.email, _unknown()):
                req = await svc.submit(w.org_id, Intake("access", email=email))
                for _ in range(MAX_RESENDS):
                    await svc.resend_code(req.id)
                with pytest.raises(RateLimited, match="make a new request"):
                    await svc.resend_code(req.id)
            sent = [b for b in mails_to(smtp, sub.email) if "Your code" in b]
            assert len(sent) == 1 + MAX_RESENDS
        finally:
            await w.ctx.stop()

    run(go())


def test_the_person_cancels_and_the_client_closes_what_failed(
    database_url: str, smtp: SmtpSink
) -> None:
    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            sub = await seed_subject(w, lead=False)
            svc = w.ctx.privacy
            req = await svc.submit(w.org_id, Intake("deletion", email=sub.email))
            await svc.verify(req.id, mailed_code(smtp, sub.email))
            cancelled = await svc.withdraw(req.id)
            assert cancelled.state == "canceled" and cancelled.contact is None
            told = mails_to(smtp, sub.email)[-1]  # whoever held the page's address, they hear
            assert "cancelled on its page" in told
            with pytest.raises(InvalidState):
                await svc.approve(w.client, req.id)
            with pytest.raises(InvalidState):
                await svc.withdraw(req.id)  # once
            assert await count(w, Person, Person.id == sub.person_id) == 1  # nothing was done

            intake = Intake(
                "correction",
                email=sub.email,
                details="postcode: 90210",
                regime="ccpa",
                name=sub.name,
            )
            failing = await svc.submit(w.org_id, intake)
            with pytest.raises(InvalidState, match="Only a request that failed"):
                await svc.close(w.client, failing.id)
            await svc.verify(failing.id, mailed_code(smtp, sub.email))
            assert (await svc.approve(w.client, failing.id)).state == "error"
            with pytest.raises(InvalidState, match="already being carried out"):
                await svc.withdraw(failing.id)  # the person can no longer withdraw it
            with pytest.raises(Forbidden):
                await svc.close(w.operator, failing.id)
            assert (await svc.close(w.client, failing.id)).state == "canceled"
        finally:
            await w.ctx.stop()

    run(go())


def test_guesses_at_identity_details_are_few(database_url: str, smtp: SmtpSink) -> None:
    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            sub = await seed_subject(w, lead=False)
            svc = w.ctx.privacy
            req = await svc.submit(w.org_id, Intake("deletion", email=sub.email, regime="ccpa"))
            await svc.verify(req.id, mailed_code(smtp, sub.email))
            for n in range(MAX_ATTEMPTS):
                await svc.add_identity_details(req.id, postcode=f"9{n:04d}")
            with pytest.raises(RateLimited, match="make a new request"):
                await svc.add_identity_details(req.id, name=sub.name)  # even the right one
            with pytest.raises(InvalidState, match="not waiting for a designation"):
                await svc.provide_designation(req.id, "Eve Agent, 1 Any Street, a@b.example")
        finally:
            await w.ctx.stop()

    run(go())
