"""Lead use cases: capture details, ask for consent, create and release leads.

Every write that releases a delivery (a lead created with consent, consent given for a lead)
enqueues the outbox jobs in the same transaction (see :mod:`confide.delivery.outbox`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime

import orjson
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from confide.accounts.principal import Principal
from confide.chat import queries, recipients
from confide.chat.models import Conversation, Message, Visitor
from confide.chat.rewrite import replace_spans, rewrite_transcript
from confide.chat.service import ChatService, ConversationRef, VisitorActor
from confide.chat.writer import Stored
from confide.clock import utcnow
from confide.delivery.outbox import cancel_for_leads, enqueue_lead
from confide.errors import ConsentRequired, InvalidInput, InvalidState, NotFound
from confide.ids import new_id
from confide.leads import consent as consent_rules
from confide.leads import fields
from confide.leads.consent import ConsentState
from confide.leads.detect import find_details
from confide.leads.models import (
    CONTACT_FIELDS,
    ConsentRecord,
    ConsentRequest,
    Lead,
    Person,
    PersonChange,
)
from confide.realtime.broker import Broker, Event
from confide.sites.models import Site
from confide.storage.engine import Database
from confide.storage.scope import Scope
from confide.tracking.models import Visit

REDACTED = "[removed: under-age visitor]"


class LeadService:
    def __init__(
        self,
        db: Database,
        broker: Broker,
        chat: ChatService,
        *,
        on_enqueued: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.broker = broker
        self.chat = chat
        self.on_enqueued = on_enqueued

    # --- details --------------------------------------------------------------------------

    async def update_details(
        self,
        actor: Principal | VisitorActor,
        conversation_id: str,
        values: dict[str, object],
        *,
        source: str = "operator",
    ) -> Person:
        """Set contact fields; creates the person on the first detail (R23). History is kept."""
        ref = await self.chat.authorise(actor, conversation_id)
        now = utcnow()
        async with self.db.session(Scope.system()) as s:
            site, conv = await _site_and_conversation(s, ref, lock=True)
            clean = fields.contact(values, site.country)
            person = await self._person_for(s, conv, now, create=any(clean.values()))
            if person is None:
                raise InvalidInput("Give at least one detail.")
            if person.minor:
                raise InvalidState("This visitor said they are under age: no details are kept.")
            actor_id = actor.user_id if isinstance(actor, Principal) else None
            for key, value in clean.items():
                if getattr(person, key) == value:
                    continue
                self._set_detail(person, key, value)
                s.add(self._change(person, conv.id, key, value, source, actor_id, now))
            person.updated_at = now
            person_id = person.id
            renamed = bool(clean.get("name")) and conv.visitor_name != clean["name"]
            if renamed:
                # The queues show who this is now, not "Visitor 7QX2" (chat/queries.py).
                conv.visitor_name = self.db.vault.seal(
                    conv.visitor_id, conv.organisation_id, clean["name"]
                )
        await self._publish_person(ref)
        if renamed:
            await self._publish_conversation(ref.id)
        return await self._reload(person_id)

    async def details_typed(self, message: Stored) -> None:
        """A visitor wrote an email or phone number in the chat: personal data has been given,
        so the person exists from now on (R23) and the chat's visit is attributed to it.

        The details themselves are not copied into the person: they are offered to the operator
        to confirm (:meth:`suggestions`), who may know better (a partner's address, a typo
        corrected two lines later). Nothing happens for a conversation that has gone (erased),
        nor for one whose visitor is already a person."""
        now = utcnow()
        async with self.db.session(Scope.system()) as s:
            conv = await s.get(Conversation, message.conversation_id, with_for_update=True)
            site = await s.get(Site, message.site_id)
            if conv is None or site is None or conv.person_id is not None:
                return
            if not any(
                d.kind in ("email", "phone") for d in find_details(message.text, site.country)
            ):
                return
            await self._person_for(s, conv, now, create=True)
            ref = ConversationRef(conv.id, conv.organisation_id, conv.site_id, conv.visitor_id)
        await self._publish_person(ref)

    async def _reload(self, person_id: str) -> Person:
        """The person as stored, decrypted (the unit of work's copy holds sealed values)."""
        async with self.db.session(Scope.system(), read_only=True) as s:
            person = await s.get(Person, person_id)
            assert person is not None
            s.expunge(person)
            return person

    def _seal_for(self, person: Person, value: str | None) -> str | None:
        return self.db.vault.seal(person.visitor_id or person.id, person.organisation_id, value)

    def _set_detail(self, person: Person, key: str, value: str | None) -> None:
        """Store a detail sealed with the subject's key, and its blind index for look-ups."""
        setattr(person, key, self._seal_for(person, value))
        if key in ("email", "phone"):
            setattr(person, f"{key}_index", self.db.vault.blind_index(key, value))

    def _change(
        self,
        person: Person,
        conversation_id: str | None,
        key: str,
        value: str | None,
        source: str,
        actor_id: str | None,
        now: datetime,
    ) -> PersonChange:
        return _change(
            person, conversation_id, key, self._seal_for(person, value), source, actor_id, now
        )

    async def _person_for(
        self, s: AsyncSession, conv: Conversation, now: datetime, *, create: bool
    ) -> Person | None:
        if conv.person_id is not None:
            return await s.get(Person, conv.person_id)
        if not create:
            return None
        gpc = bool(await s.scalar(select(Visitor.gpc).where(Visitor.id == conv.visitor_id)))
        person = Person(
            id=new_id(),
            organisation_id=conv.organisation_id,
            site_id=conv.site_id,
            visitor_id=conv.visitor_id,
            sale_share_opt_out=gpc,
            minor=False,
            created_at=now,
            updated_at=now,
        )
        s.add(person)
        await s.flush()
        conv.person_id = person.id
        # The visitor's usage and behavioural data of this visit are now attributed (R23).
        if conv.visit_id is not None:
            await s.execute(
                update(Visit).where(Visit.id == conv.visit_id).values(person_id=person.id)
            )
        return person

    async def suggestions(self, principal: Principal, conversation_id: str) -> list[dict[str, str]]:
        """Details typed in the visitor's messages that are not yet captured (to confirm)."""
        ref = await self.chat.authorise(principal, conversation_id)
        async with self.db.session(principal.scope, read_only=True) as s:
            site, conv = await _site_and_conversation(s, ref)
            person = await s.get(Person, conv.person_id) if conv.person_id else None
            texts = await s.scalars(
                select(Message.text)
                .where(Message.conversation_id == ref.id, Message.author_role == "visitor")
                .order_by(Message.seq)
            )
            found: list[dict[str, str]] = []
            seen: set[tuple[str, str]] = set()
            for text in texts:
                for d in find_details(text, site.country):
                    field_name = d.kind
                    current = getattr(person, field_name, None) if person else None
                    if current == d.normalised or (d.kind, d.normalised) in seen:
                        continue
                    seen.add((d.kind, d.normalised))
                    found.append({"field": field_name, "value": d.normalised, "typed": d.value})
        return found

    async def record_age(self, principal: Principal, conversation_id: str, age: int) -> bool:
        """The visitor stated their age. Under the site's threshold: no lead, details redacted
        (policy 7.3, R31). Returns whether the visitor is a minor."""
        if not 0 < age < 130:
            raise InvalidInput("Give the age the visitor stated, in years.")
        ref = await self.chat.authorise(principal, conversation_id)
        now = utcnow()
        async with self.db.session(Scope.system()) as s:
            site, conv = await _site_and_conversation(s, ref, lock=True)
            if age >= site.min_age:
                return False
            person = await self._person_for(s, conv, now, create=True)
            assert person is not None
            person.minor = True
            for key in CONTACT_FIELDS:
                self._set_detail(person, key, None)
            await s.execute(
                update(PersonChange).where(PersonChange.person_id == person.id).values(value=None)
            )
            s.add(_change(person, conv.id, "minor", None, "redaction", principal.user_id, now))
            lead_ids = list(await s.scalars(select(Lead.id).where(Lead.person_id == person.id)))
            await cancel_for_leads(s, lead_ids, "under-age visitor", now)
            if lead_ids:
                await s.execute(
                    update(Lead)
                    .where(Lead.id.in_(lead_ids))
                    .values(
                        delivery_state="withdrawn",
                        comments=None,
                        vehicle=None,
                        trade_in=None,
                        updated_at=now,
                    )
                )
            await _redact_transcript(s, conv, site.country, self.db.vault.seal)
        await self._publish_person(ref)
        return True

    # --- consent ----------------------------------------------------------------------------

    async def request_consent(self, principal: Principal, conversation_id: str) -> ConsentState:
        """Put the site's consent question to the visitor, in the chat (R25)."""
        ref = await self.chat.authorise(principal, conversation_id)
        now = utcnow()
        async with self.db.session(Scope.system()) as s:
            site, conv = await _site_and_conversation(s, ref)
            if conv.state == "closed":
                raise InvalidState("The chat is closed: the visitor cannot answer.")
            if conv.source == "enquiry":
                raise InvalidState(
                    "The visitor left an enquiry and is not in a chat: they cannot answer here. "
                    "Their consent comes from the enquiry form's box, or ask by email or phone."
                )
            req = ConsentRequest(
                id=new_id(),
                organisation_id=conv.organisation_id,
                site_id=conv.site_id,
                conversation_id=conv.id,
                purpose=consent_rules.PURPOSE,
                text=consent_rules.render_text(site),
                policy_url=site.privacy_policy_url or "/policy",
                policy_version=await consent_rules.policy_version_for(s, site),
                requested_by=principal.user_id,
                requested_at=now,
            )
            s.add(req)
        await self.chat.post_system(ref, f"consent-q-{req.id}", req.text)
        state = await self.consent_state(ref.id)
        await self._publish_consent(ref, state)
        return state

    async def consent_state(self, conversation_id: str) -> ConsentState:
        async with self.db.session(Scope.system(), read_only=True) as s:
            return await consent_state_of(s, conversation_id)

    async def answer_consent(
        self,
        actor: VisitorActor,
        conversation_id: str,
        request_id: str,
        answer: str,
        *,
        ip_truncated: str | None = None,
        user_agent: str | None = None,
        language: str = "en",
    ) -> ConsentState:
        """Record the visitor's answer as immutable evidence; release or stop deliveries."""
        if answer not in consent_rules.ANSWERS:
            raise InvalidInput("The answer is granted, denied or withdrawn.")
        ref = await self.chat.authorise(actor, conversation_id)
        async with self.db.session(Scope.system(), read_only=True) as s:
            req = await s.get(ConsentRequest, request_id)
            if req is None or req.conversation_id != ref.id:
                raise NotFound("No such consent question.")
            current = await consent_state_of(s, ref.id)
            site = await s.get(Site, ref.site_id)
            assert site is not None
            now_in = await s.scalar(select(Conversation.state).where(Conversation.id == ref.id))
            closed = now_in == "closed"
        if answer == "withdrawn" and not current.granted:
            raise InvalidState("There is no consent to withdraw.")
        if answer != "withdrawn" and current.request_id != request_id:
            raise InvalidState("That question was replaced by a newer one.")
        if answer == current.answer and current.request_id == request_id:
            return current  # a resend of the same answer after a reconnect: idempotent
        line = consent_rules.ANSWER_LINES[answer].replace("{site}", site.name)
        seq: int | None = None
        # "You can withdraw this at any time": a closed chat takes no new line, so there the
        # record below is the evidence on its own.
        if not (answer == "withdrawn" and closed):
            stored = await self.chat.post_system(ref, f"consent-a-{request_id}-{answer}", line)
            seq = stored.seq
        now = utcnow()
        queued = False
        async with self.db.session(Scope.system()) as s:
            conv = await s.get(Conversation, ref.id)
            assert conv is not None
            record = ConsentRecord(
                id=new_id(),
                organisation_id=ref.organisation_id,
                site_id=ref.site_id,
                conversation_id=ref.id,
                request_id=req.id,
                visitor_id=actor.visitor_id,
                person_id=conv.person_id,
                purpose=req.purpose,
                channel="chat",
                text=req.text,
                text_sha256=consent_rules.sha256(req.text),
                answer=answer,
                policy_version=req.policy_version,
                language=language[:16],
                message_seq=seq,
                ip_truncated=ip_truncated,
                user_agent=user_agent[:80] if user_agent else None,
                answered_at=now,
            )
            s.add(record)
            await s.flush()
            leads = list(await s.scalars(select(Lead).where(Lead.conversation_id == ref.id)))
            if answer == "granted":
                for lead in leads:
                    if lead.delivery_state in ("awaiting_consent", "withdrawn"):
                        queued |= await _release(s, lead, record.id, now)
            elif answer == "withdrawn":
                undelivered = [x for x in leads if x.delivery_state != "delivered"]
                await cancel_for_leads(s, [x.id for x in undelivered], "consent withdrawn", now)
                for lead in undelivered:
                    lead.delivery_state = "withdrawn"
                    lead.updated_at = now
            state = await consent_state_of(s, ref.id)
        if queued:
            self.on_enqueued()
        await self._publish_consent(ref, state)
        return state

    # --- leads ------------------------------------------------------------------------------

    async def create_lead(
        self,
        principal: Principal,
        conversation_id: str,
        *,
        purpose: object,
        vehicle: object = None,
        trade_in: object = None,
        comments: object = None,
    ) -> Lead:
        """A lead from this chat's captured details. Delivered at once if the visitor consented,
        otherwise held until they do (R26: no outbound job without consent)."""
        ref = await self.chat.authorise(principal, conversation_id)
        clean_purpose = fields.purpose(purpose)
        interest = "test-drive" if clean_purpose == "test_drive" else "buy"
        car = fields.vehicle(vehicle, interest)
        px = fields.vehicle(trade_in, "trade-in")
        if px is not None:
            px = fields.VehicleInput("trade-in", "used", px.year, px.make, px.model, px.stock)
        note = fields._text(comments, "Comments", 2000)
        now = utcnow()
        async with self.db.session(Scope.system()) as s:
            _site, conv = await _site_and_conversation(s, ref)
            person = await s.get(Person, conv.person_id) if conv.person_id else None
            _check_person(person)
            assert person is not None
            lead = Lead(
                id=new_id(),
                organisation_id=conv.organisation_id,
                site_id=conv.site_id,
                person_id=person.id,
                conversation_id=conv.id,
                visit_id=conv.visit_id,
                purpose=clean_purpose,
                vehicle=self._seal_for(person, orjson.dumps(asdict(car)).decode() if car else None),
                trade_in=self._seal_for(person, orjson.dumps(asdict(px)).decode() if px else None),
                comments=self._seal_for(person, note),
                status="new",
                delivery_state="awaiting_consent",
                sale_share_opt_out=person.sale_share_opt_out,
                revision=0,
                created_by=principal.user_id,
                created_at=now,
                updated_at=now,
            )
            s.add(lead)
            await s.flush()
            state = await consent_state_of(s, conv.id)
            queued = (
                state.granted
                and state.record_id is not None
                and await _release(s, lead, state.record_id, now)
            )
            await s.flush()
            s.expunge(lead)
        if queued:
            self.on_enqueued()
        await self._publish_person(ref)
        return lead

    async def deliver(self, principal: Principal, lead_id: str) -> Lead:
        """Send a held lead now. Without consent this fails clearly (R26)."""
        now = utcnow()
        async with self.db.session(principal.scope) as s:
            lead = await s.get(Lead, lead_id)
            if lead is None or not principal.scope.allows(lead.organisation_id, lead.site_id):
                raise NotFound("No such lead.")
            if lead.delivery_state in ("queued", "delivered"):
                s.expunge(lead)
                return lead
            state = (
                await consent_state_of(s, lead.conversation_id) if lead.conversation_id else None
            )
            if state is None or not state.granted or state.record_id is None:
                raise ConsentRequired(
                    "The visitor has not consented in the chat to share their details with the "
                    "client. Ask for consent first; the lead is sent when they agree."
                )
            queued = await _release(s, lead, state.record_id, now)
            await s.flush()
            s.expunge(lead)
        if queued:
            self.on_enqueued()
        return lead

    async def from_enquiry(
        self,
        site: Site,
        conversation_id: str,
        *,
        name: str,
        contact: str,
        message: str,
        consent_text: str | None,
        ip_truncated: str | None = None,
        user_agent: str | None = None,
    ) -> Lead | None:
        """The offline form becomes a lead; a ticked consent box is evidence like a chat answer.

        ``consent_text`` is the label the visitor ticked (None: not ticked). Without a valid
        email or phone there is nobody to contact: the enquiry stays a conversation only.
        """
        values: dict[str, str | None] = {"name": " ".join(name.split())[:200] or None}
        try:
            values["email"] = fields.email(contact)
        except InvalidInput:
            try:
                values["phone"] = fields.phone(contact, site.country)
            except InvalidInput:
                return None
        now = utcnow()
        async with self.db.session(Scope.system()) as s:
            conv = await s.get(Conversation, conversation_id)
            assert conv is not None
            person = await self._person_for(s, conv, now, create=True)
            assert person is not None
            for key, value in values.items():
                self._set_detail(person, key, value)
                s.add(self._change(person, conv.id, key, value, "form", None, now))
            lead = Lead(
                id=new_id(),
                organisation_id=site.organisation_id,
                site_id=site.id,
                person_id=person.id,
                conversation_id=conv.id,
                visit_id=conv.visit_id,
                purpose="general",
                comments=self._seal_for(person, message[:2000]),
                status="new",
                delivery_state="awaiting_consent",
                sale_share_opt_out=person.sale_share_opt_out,
                revision=0,
                created_at=now,
                updated_at=now,
            )
            s.add(lead)
            await s.flush()
            queued = False
            if consent_text:
                text = " ".join(consent_text.split())[:1000]
                record = ConsentRecord(
                    id=new_id(),
                    organisation_id=site.organisation_id,
                    site_id=site.id,
                    conversation_id=conv.id,
                    request_id=None,
                    visitor_id=conv.visitor_id,
                    person_id=person.id,
                    purpose=consent_rules.PURPOSE,
                    channel="form",
                    text=text,
                    text_sha256=consent_rules.sha256(text),
                    answer="granted",
                    policy_version=await consent_rules.policy_version_for(s, site),
                    language="en",
                    message_seq=None,
                    ip_truncated=ip_truncated,
                    user_agent=user_agent[:80] if user_agent else None,
                    answered_at=now,
                )
                s.add(record)
                await s.flush()
                queued = await _release(s, lead, record.id, now)
            await s.flush()
            s.expunge(lead)
        if queued:
            self.on_enqueued()
        return lead

    # --- events -------------------------------------------------------------------------------

    async def _publish_consent(self, ref: ConversationRef, state: ConsentState) -> None:
        channels = (recipients.conversation_visitor(ref.id), recipients.conversation_agents(ref.id))
        await self.broker.publish(Event(channels, state.frame(ref.id)))

    async def lead_changed(self, lead_id: str) -> None:
        """A lead's delivery state changed elsewhere (the worker): its chat's agents re-read."""
        async with self.db.session(Scope.system(), read_only=True) as s:
            conv = await s.scalar(select(Lead.conversation_id).where(Lead.id == lead_id))
        if conv is not None:
            frame = {"type": "lead_changed", "conversation": conv}
            await self.broker.publish(Event((recipients.conversation_agents(conv),), frame))

    async def _publish_conversation(self, conversation_id: str) -> None:
        """The conversation as it committed (read back: the session's copy holds sealed text)."""
        async with self.db.session(Scope.system(), read_only=True) as s:
            view = await queries.conversation_view(s, conversation_id)
        if view is not None:
            await self.chat.publish_change(view)

    async def _publish_person(self, ref: ConversationRef) -> None:
        """Agents re-read the lead panel; the visitor's socket never gets this frame."""
        frame = {"type": "lead_changed", "conversation": ref.id}
        await self.broker.publish(Event((recipients.conversation_agents(ref.id),), frame))


def _check_person(person: Person | None) -> None:
    if person is None:
        raise InvalidState("Capture the visitor's details first (a name and an email or phone).")
    if person.minor:
        raise InvalidState("The visitor said they are under age: no lead can be created.")
    if not person.name or not (person.email or person.phone):
        raise InvalidState("A lead needs the visitor's name and an email address or phone number.")


async def _release(s: AsyncSession, lead: Lead, consent_id: str, now: datetime) -> bool:
    """Consent is on record: queue the lead's deliveries (or mark it delivered to the portal).

    A person who restricted processing (Art. 18, R55) gets no hand-off at all.
    """
    lead.consent_id = consent_id
    person = await s.get(Person, lead.person_id)
    if person is not None and person.restricted:
        lead.delivery_state = "withdrawn"
        lead.updated_at = now
        return False
    jobs = await enqueue_lead(s, lead, "lead.created", now)
    lead.delivery_state = "queued" if jobs else "delivered"
    lead.delivered_at = None if jobs else now
    lead.updated_at = now
    return jobs > 0


async def _site_and_conversation(
    s: AsyncSession, ref: ConversationRef, *, lock: bool = False
) -> tuple[Site, Conversation]:
    """``lock``: hold the conversation row (PostgreSQL; SQLite serialises writers anyway), so
    that two writers of its person (an operator, details typed in the chat, an age) cannot
    both create one, or undo each other's redaction."""
    conv = await s.get(Conversation, ref.id, with_for_update=lock)
    site = await s.get(Site, ref.site_id)
    if conv is None or site is None:
        raise NotFound("No such conversation.")
    return site, conv


async def consent_state_of(s: AsyncSession, conversation_id: str) -> ConsentState:
    req = await s.scalar(
        select(ConsentRequest)
        .where(ConsentRequest.conversation_id == conversation_id)
        .order_by(ConsentRequest.requested_at.desc(), ConsentRequest.id.desc())
        .limit(1)
    )
    rec = await s.scalar(
        select(ConsentRecord)
        .where(
            ConsentRecord.conversation_id == conversation_id,
            ConsentRecord.purpose == consent_rules.PURPOSE,
        )
        .order_by(ConsentRecord.answered_at.desc(), ConsentRecord.id.desc())
        .limit(1)
    )
    # An answer to an older question does not answer a newer one (except a withdrawal).
    answered = rec is not None and (
        req is None or rec.request_id == req.id or rec.answer == "withdrawn"
    )
    return ConsentState(
        request_id=req.id if req else None,
        text=req.text if req else None,
        policy_url=req.policy_url if req else None,
        policy_version=req.policy_version if req else None,
        answer=rec.answer if rec and answered else None,
        answered_at=rec.answered_at if rec and answered else None,
        record_id=rec.id if rec and answered else None,
    )


def _change(
    person: Person,
    conversation_id: str | None,
    key: str,
    value: str | None,
    source: str,
    actor_id: str | None,
    now: datetime,
) -> PersonChange:
    return PersonChange(
        organisation_id=person.organisation_id,
        site_id=person.site_id,
        person_id=person.id,
        conversation_id=conversation_id,
        field_name=key,
        value=value,
        source=source,
        actor_id=actor_id,
        at=now,
    )


async def _redact_transcript(
    s: AsyncSession,
    conv: Conversation,
    region: str,
    seal: Callable[[str, str, str | None], str | None],
) -> None:
    """Replace every detail the visitor typed with a placeholder (R31)."""

    def redact(text: str) -> str:
        spans = [(d.start, d.end) for d in find_details(text, region)]
        return replace_spans(text, spans, REDACTED)

    await rewrite_transcript(s, conv, seal, redact)
