"""Privacy requests from data subjects: intake, verification, review, fulfilment (policy 7).

As processor we assist the controller: the client organisation's users approve or deny their
organisation's requests (or auto-approval is set), our admins see all. Every state change is a
:class:`RequestEvent`; personal data on the request is sealed under the request's own key and
cleared when the request ends, leaving blind indexes only (R54).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from confide.accounts.models import Organisation, Role, User
from confide.accounts.principal import Principal
from confide.audit import log as audit
from confide.chat.models import ChatIdentifier
from confide.chat.views import iso
from confide.clock import utcnow
from confide.errors import (
    ConfideError,
    Forbidden,
    InvalidInput,
    InvalidState,
    NotFound,
    RateLimited,
)
from confide.ids import new_id
from confide.leads import fields
from confide.leads.models import Person
from confide.privacy import certainty, deadlines, fulfil
from confide.privacy.lifecycle import (
    DENIAL_BASES,
    KINDS,
    TERMINAL,
    UNVERIFIED_KINDS,
    State,
    move,
)
from confide.privacy.models import ErasureTask, PrivacyRequest, RequestEvent, VerificationCode
from confide.privacy.notify import COMPLAINT_ROUTE, Mailer, acknowledgement
from confide.privacy.texts import Texter
from confide.settings import Settings
from confide.storage.engine import Database
from confide.storage.scope import Scope

CODE_TTL = timedelta(minutes=10)
MAX_ATTEMPTS = 5
#: New codes one request may ask for (each sent to the same on-file address).
MAX_RESENDS = 5
RESENT = "a new code was asked for"
#: The note of each try at more identity details (R47); the tries are counted by it.
MORE_DETAILS = "more details given"
EXPORT_TTL = timedelta(days=7)
#: The same words whether or not we hold data about the requester (no probing, policy 7.1).
RECEIVED = (
    "Thank you. If we hold information linked to the details you gave, we have sent a one-time "
    "code to the email address or phone number we have on file. Enter it below to continue."
)


@dataclass(frozen=True)
class Intake:
    kind: str
    email: str | None = None
    phone: str | None = None
    regime: str = "gdpr"
    details: str | None = None
    agent_designation: str | None = None
    power_of_attorney: bool = False
    channel: str = "form"
    #: Access: ``specific`` pieces (default) or ``categories`` (certainty.py).
    access_scope: str | None = None
    #: Extra details that prove identity (matched against what we hold, never stored as data).
    name: str | None = None
    postcode: str | None = None
    #: The requester signed ``certainty.DECLARATION`` (their name is the signature).
    declaration: bool = False


SmsSender = Callable[[str, str], None]


class PrivacyService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        mailer: Mailer | None = None,
        sms: SmsSender | None = None,
        on_enqueued: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.mailer = mailer or Mailer(settings)
        #: Texting is outside our control (an SMS provider, texts.py); tests pass a fake.
        self._texter = Texter(settings)
        self.sms: SmsSender = sms or self._texter
        self.on_enqueued = on_enqueued

    async def drain_texts(self) -> None:
        await self._texter.drain()

    @property
    def can_text(self) -> bool:
        """Whether a code can go by text at all (else an email on file is used)."""
        return self.sms is not self._texter or self._texter.configured

    # --- intake -------------------------------------------------------------------------------

    async def submit(self, organisation_id: str, intake: Intake) -> PrivacyRequest:
        """Record a request, acknowledge it at once and send a code if we hold the identity."""
        kind, regime = intake.kind, intake.regime
        if kind not in KINDS:
            raise InvalidInput(f"Choose a request type: {', '.join(KINDS)}.")
        if regime not in deadlines.REGIMES:
            raise InvalidInput("Regime is gdpr or ccpa.")
        email = fields.email(intake.email) if intake.email else None
        region = "US" if regime == "ccpa" else "GB"
        phone = fields.phone(intake.phone, region) if intake.phone else None
        if not email and not phone:
            raise InvalidInput("Give the email address or phone number you used with us.")
        if kind == "correction":
            # A clear error now, not after review: the new value is checked as the field is.
            key, value = fulfil.parse_correction(intake.details or "")
            fields.contact({key: value}, region)
        scope = certainty.check_scope(kind, intake.access_scope)
        facts = certainty.clean_facts(intake.name, intake.postcode)
        if intake.declaration and not facts.name:
            raise InvalidInput("Sign the declaration with your full name.")
        vault = self.db.vault
        now = utcnow()
        async with self.db.session(Scope.system()) as s:
            org = await s.get(Organisation, organisation_id)
            if org is None:
                raise NotFound("No such organisation.")
            matched, visitors = await self._matches(s, organisation_id, email, phone)
            req = PrivacyRequest(
                id=new_id(),
                organisation_id=organisation_id,
                kind=kind,
                regime=regime,
                state=State.RECEIVED.value,
                channel=intake.channel,
                email_index=vault.blind_index("email", email),
                phone_index=vault.blind_index("phone", phone),
                power_of_attorney=intake.power_of_attorney,
                person_ids=matched,
                visitor_ids=visitors,
                received_at=now,
                due_at=deadlines.due(now, regime, kind),
                access_scope=scope,
                declared_at=now if intake.declaration else None,
            )
            seal = vault.seal
            req.identity_facts = seal(req.id, organisation_id, facts.dumps())
            req.contact = seal(req.id, organisation_id, email or phone)
            req.details = seal(req.id, organisation_id, intake.details)
            req.agent_designation = seal(req.id, organisation_id, intake.agent_designation)
            s.add(req)
            await s.flush()
            await self._event(s, req, None, State.RECEIVED, None, f"via {intake.channel}")
            code = await self._next_step(s, req, intake, email, phone, now)
            org_name = org.name
        if email:
            await self._acknowledge(req, email, org_name)
        elif self.can_text:
            # By phone: a number we hold gets the code by text, which says how it works and
            # when we answer; we text no number we do not hold (the answer on screen is the
            # acknowledgement then).
            await self._acknowledged(req.id)
        if code is not None:
            on_file = await self._contact(req.id)
            if on_file:
                agent = (intake.agent_designation or "") if intake.channel == "agent" else None
                await self._send_code(on_file, req.id, code, agent)
        if kind in UNVERIFIED_KINDS:
            await self._fulfil(req.id, None)
        return await self._load(req.id)

    async def _acknowledge(self, req: PrivacyRequest, to: str | None, org_name: str) -> bool:
        """Email the requester that we have the request, how verification works and when to
        expect an answer (R45). ``acknowledged_at`` records a sent acknowledgement, not an
        attempt; the daily task tries again while it is missing (:meth:`remind`)."""
        if not to or "@" not in to:
            return False
        subject, body = acknowledgement(org_name, req.kind, req.due_at.date().isoformat(), None)
        sent = await self.mailer.send(to, subject, body)
        if sent:
            await self._acknowledged(req.id)
        return sent

    async def _acknowledged(self, request_id: str) -> None:
        async with self.db.session(Scope.system()) as s:
            stored = await s.get(PrivacyRequest, request_id)
            if stored is not None and stored.acknowledged_at is None:
                stored.acknowledged_at = utcnow()

    async def _contact(self, request_id: str) -> str | None:
        async with self.db.session(Scope.system(), read_only=True) as s:
            req = await s.get(PrivacyRequest, request_id)
            return req.contact if req else None

    async def _matches(
        self, s: AsyncSession, org_id: str, email: str | None, phone: str | None
    ) -> tuple[list[str], list[str]]:
        """(person ids, visitor ids) the identity leads to: persons on file with this email or
        phone, and visitors who typed it in a chat (``chat_identifiers``), with the persons
        they became. What a visitor says in a chat is theirs whether or not it was captured."""
        vault = self.db.vault
        email_index = vault.blind_index("email", email)
        phone_index = vault.blind_index("phone", phone)
        conditions = []
        if email_index:
            conditions.append(Person.email_index == email_index)
        if phone_index:
            conditions.append(Person.phone_index == phone_index)
        typed = [i for i in (email_index, phone_index) if i]
        visitors = sorted(
            set(
                await s.scalars(
                    select(ChatIdentifier.visitor_id).where(
                        ChatIdentifier.organisation_id == org_id,
                        ChatIdentifier.blind_index.in_(typed),
                    )
                )
            )
        )
        if visitors:
            conditions.append(Person.visitor_id.in_(visitors))
        rows = await s.scalars(
            select(Person.id).where(Person.organisation_id == org_id, or_(*conditions))
        )
        return sorted(set(rows)), visitors

    async def _typed_in_chat(self, s: AsyncSession, org_id: str, kind: str, value: str) -> bool:
        """Whether a visitor typed this email or phone in one of the organisation's chats."""
        found = await s.scalar(
            select(ChatIdentifier.id)
            .where(
                ChatIdentifier.organisation_id == org_id,
                ChatIdentifier.blind_index == self.db.vault.blind_index(kind, value),
            )
            .limit(1)
        )
        return found is not None

    async def _next_step(
        self,
        s: AsyncSession,
        req: PrivacyRequest,
        intake: Intake,
        email: str | None,
        phone: str | None,
        now: datetime,
    ) -> str | None:
        """Opt-outs run at once; an agent without a designation must send one; others verify.

        Returns the code for the acknowledgement email (None when it goes by text or not at all).
        """
        if req.kind in UNVERIFIED_KINDS:
            await self._to(
                s, req, State.IN_PROCESSING, None, "no verification needed: applied at once"
            )
            return None
        if intake.channel == "agent" and not (intake.agent_designation or "").strip():
            await self._to(
                s, req, State.REQUIRES_INPUT, None, "agent request without a designation"
            )
            return None
        if intake.channel == "agent" and intake.power_of_attorney:
            # A recorded power of attorney replaces the person's direct confirmation (CCPA
            # §7063): the client reviews the document before approving. The results still go
            # only to contact details we hold for the person, never to the address just typed:
            # a false "power of attorney" must not buy someone else's data.
            await self._to(s, req, State.PENDING, None, "power of attorney recorded: for review")
            channel, to = await self._on_file(s, req, intake, email, phone)
            req.contact = self.db.vault.seal(req.id, req.organisation_id, to)
            await self._keep_proven(s, req, channel, to)
            return None
        await self._to(
            s, req, State.IDENTITY_UNVERIFIED, None, "code sent if the identity is on file"
        )
        if not (req.person_ids or req.visitor_ids):
            return None
        channel, to = await self._on_file(s, req, intake, email, phone)
        if channel is None or to is None:
            return None  # nothing on file to send a code to: the same silence as no match
        # Results go only to the verified, on-file address (never to one just typed).
        req.contact = self.db.vault.seal(req.id, req.organisation_id, to)
        return self._issue_code(s, req, channel, to, intake.agent_designation)

    async def _on_file(
        self,
        s: AsyncSession,
        req: PrivacyRequest,
        intake: Intake,
        email: str | None,
        phone: str | None,
    ) -> tuple[str | None, str | None]:
        """:meth:`_reachable`, by email when no text can be sent (no SMS gateway set)."""
        channel, to = await self._reachable(s, req, intake, email, phone)
        if channel != "phone" or self.can_text:
            return channel, to
        if _correcting(req, intake) == "email":
            return None, None  # never verified by the email being corrected
        persons = await _persons(s, req)
        emails = [
            p.email
            for p in persons
            if p.email and p.phone_index == self.db.vault.blind_index("phone", to)
        ]
        return ("email", emails[0]) if emails else (None, None)

    async def _reachable(
        self,
        s: AsyncSession,
        req: PrivacyRequest,
        intake: Intake,
        email: str | None,
        phone: str | None,
    ) -> tuple[str | None, str | None]:
        """Where the code may go: only an address or number we already hold for the person (or
        that the visitor typed in a chat: we hold it there), and never the field being
        corrected (a new email is proved by the phone on file)."""
        persons = await _persons(s, req)
        correcting = _correcting(req, intake)
        org_id = req.organisation_id
        typed_phone = phone if correcting != "phone" else None
        if correcting == "email":
            phones = [p.phone for p in persons if p.phone]
            if phones:
                return "phone", phones[0]
            if typed_phone and await self._typed_in_chat(s, org_id, "phone", typed_phone):
                return "phone", typed_phone
            return None, None
        vault = self.db.vault
        if email and any(p.email_index == vault.blind_index("email", email) for p in persons):
            return "email", email
        phone_index = vault.blind_index("phone", phone)
        if correcting != "phone" and any(p.phone_index == phone_index for p in persons if phone):
            return "phone", phone
        if email and await self._typed_in_chat(s, org_id, "email", email):
            return "email", email
        if typed_phone and await self._typed_in_chat(s, org_id, "phone", typed_phone):
            return "phone", typed_phone
        emails = [p.email for p in persons if p.email]
        return ("email", emails[0]) if emails and correcting != "email" else (None, None)

    async def _keep_proven(
        self, s: AsyncSession, req: PrivacyRequest, channel: str | None, to: str | None
    ) -> None:
        """Narrow the request to the people the code's address or number leads to.

        A request may give an email and a phone that belong to two different people; the code
        proves only the one it was sent to. Without this, Alice's email and Bob's phone would
        bring Bob's chats into Alice's export, or erase him.
        """
        index = self.db.vault.blind_index(channel, to) if channel and to else None
        if index is None:
            req.person_ids, req.visitor_ids = [], []
            return
        org_id = req.organisation_id
        typed = set(
            await s.scalars(
                select(ChatIdentifier.visitor_id).where(
                    ChatIdentifier.organisation_id == org_id, ChatIdentifier.blind_index == index
                )
            )
        )
        held = Person.email_index if channel == "email" else Person.phone_index
        conditions = [held == index]
        if typed:
            conditions.append(Person.visitor_id.in_(typed))
        persons = await s.scalars(
            select(Person.id).where(
                Person.organisation_id == org_id,
                Person.id.in_(list(req.person_ids or [])),
                or_(*conditions),
            )
        )
        req.person_ids = sorted(set(persons))
        req.visitor_ids = sorted(typed & set(req.visitor_ids or []))

    def _hash(self, request_id: str, code: str) -> str:
        return hmac.new(request_id.encode(), code.encode(), hashlib.sha256).hexdigest()

    # --- verification ---------------------------------------------------------------------------

    async def verify(self, request_id: str, code: str) -> PrivacyRequest:
        """Check the one-time code (limited attempts, short expiry). The same error whether the
        code is wrong, expired or was never sent, so nothing tells whether we hold data."""
        now = utcnow()
        wrong = InvalidInput("That code is not right or has expired. Ask for a new one.")
        async with self.db.session(Scope.system()) as s:
            req = await s.get(PrivacyRequest, request_id, with_for_update=True)
            if req is None:
                raise NotFound("No such request.")
            if req.state != State.IDENTITY_UNVERIFIED.value:
                raise InvalidState("This request is not waiting for a code.")
            row = await s.scalar(
                select(VerificationCode)
                .where(
                    VerificationCode.request_id == request_id, VerificationCode.used_at.is_(None)
                )
                .order_by(VerificationCode.id.desc())
                .limit(1)
            )
            if row is None or row.expires_at < now or row.attempts >= MAX_ATTEMPTS:
                raise wrong
            row.attempts += 1
            if not hmac.compare_digest(row.code_hash, self._hash(request_id, code.strip())):
                await s.commit()
                raise wrong
            row.used_at = now
            req.identity_verified_at = now
            await self._keep_proven(s, req, row.channel, req.contact)
            note = f"identity verified by {row.channel} code"
            facts = certainty.Facts.loads(req.identity_facts)
            auto = await self._decide_certainty(s, req, row.channel, facts, note)
        if auto:
            await self._fulfil(request_id, None)
        return await self._load(request_id)

    async def _decide_certainty(
        self,
        s: AsyncSession,
        req: PrivacyRequest,
        code_channel: str,
        facts: certainty.Facts,
        note: str,
    ) -> bool:
        """After the code: pending when enough details match (R47, certainty.py), else waiting
        for more from the requester. Returns whether the request was approved automatically."""
        need = certainty.needed(req.kind, req.regime, req.access_scope)
        persons = await _persons(s, req)
        req.data_points = certainty.points(
            persons,
            email_index=req.email_index,
            phone_index=req.phone_index,
            code_channel=code_channel,
            facts=facts,  # passed in: once set again, the row holds the sealed text
        )
        declared = req.declared_at is not None
        if not need.met(req.data_points, declared):
            short = f"{note}; {req.data_points} matching, needs {need.explain()}"
            if req.state == State.REQUIRES_INPUT.value:
                await self._event(s, req, req.state, State.REQUIRES_INPUT, None, short)
            else:
                await self._to(s, req, State.REQUIRES_INPUT, None, short)
            return False
        matched = f"{req.data_points} matching detail{'s' if req.data_points != 1 else ''}"
        await self._to(s, req, State.PENDING, None, f"{note}; {matched}")
        org = await s.get(Organisation, req.organisation_id)
        auto = org is not None and org.privacy_auto_approve
        if auto:
            await self._to(s, req, State.APPROVED, None, "approved automatically (setting)")
        return auto

    async def add_identity_details(
        self,
        request_id: str,
        *,
        name: str | None = None,
        postcode: str | None = None,
        declaration: bool = False,
        access_scope: str | None = None,
    ) -> PrivacyRequest:
        """A verified requester whose details did not yet match enough (R47) adds more, signs
        the declaration, or narrows an access request to the categories of data."""
        facts = certainty.clean_facts(name, postcode)
        async with self.db.session(Scope.system()) as s:
            req = await s.get(PrivacyRequest, request_id, with_for_update=True)
            if req is None:
                raise NotFound("No such request.")
            if req.state != State.REQUIRES_INPUT.value or req.identity_verified_at is None:
                raise InvalidState("This request is not waiting for more details.")
            # Each try says whether the details matched: a few, not a guessing game.
            tries = await s.scalar(
                select(func.count())
                .select_from(RequestEvent)
                .where(
                    RequestEvent.request_id == request_id,
                    RequestEvent.note.like(f"{MORE_DETAILS}%"),
                )
            )
            if int(tries or 0) >= MAX_ATTEMPTS:
                raise RateLimited("Too many tries for this request: make a new request.")
            scope = certainty.check_scope(req.kind, access_scope or req.access_scope)
            merged = certainty.Facts.loads(req.identity_facts).merged(facts)
            if declaration and not merged.name:
                raise InvalidInput("Sign the declaration with your full name.")
            req.access_scope = scope
            req.identity_facts = self.db.vault.seal(req.id, req.organisation_id, merged.dumps())
            if declaration and req.declared_at is None:
                req.declared_at = utcnow()
            channel = await s.scalar(
                select(VerificationCode.channel)
                .where(
                    VerificationCode.request_id == request_id,
                    VerificationCode.used_at.is_not(None),
                )
                .order_by(VerificationCode.id.desc())
                .limit(1)
            )
            auto = await self._decide_certainty(s, req, channel or "", merged, MORE_DETAILS)
        if auto:
            await self._fulfil(request_id, None)
        return await self._load(request_id)

    async def resend_code(self, request_id: str) -> None:
        """A fresh code to the same on-file address (the old one stops working)."""
        async with self.db.session(Scope.system()) as s:
            req = await s.get(PrivacyRequest, request_id)
            if req is None:
                raise NotFound("No such request.")
            if req.state != State.IDENTITY_UNVERIFIED.value:
                return
            # Counted whether or not anyone matched (the cap must not tell), so one request
            # cannot fill someone's inbox with codes.
            asked = await s.scalar(
                select(func.count())
                .select_from(RequestEvent)
                .where(RequestEvent.request_id == request_id, RequestEvent.note == RESENT)
            )
            if int(asked or 0) >= MAX_RESENDS:
                raise RateLimited("No more codes for this request: make a new request.")
            await self._event(s, req, req.state, State(req.state), None, RESENT)
            if not _matched(req):
                return  # the same silence as for an identity we do not hold
            await s.execute(
                VerificationCode.__table__.update()  # type: ignore[attr-defined]
                .where(VerificationCode.request_id == request_id)
                .values(used_at=utcnow())
            )
            contact = req.contact  # the verified, on-file channel chosen at intake
            if not contact:
                return
            channel = "email" if "@" in contact else "phone"
            code = self._issue_code(s, req, channel, contact, req.agent_designation)
            agent = (req.agent_designation or "") if req.channel == "agent" else None
        if code:
            await self._send_code(contact, request_id, code, agent)

    async def _send_code(
        self, to: str, request_id: str, code: str, agent: str | None = None
    ) -> None:
        """The one-time code by email: what it is for, where to enter it, how long it lasts;
        for an agent's request (``agent``: their designation), who claims to act for the person."""
        base = (self.settings.public_url or self.settings.email_link_base).rstrip("/")
        page = f"{base}/privacy/requests/{request_id}" if base else None
        lines = [
            f"Your code: {code}",
            "",
            "Enter it on your privacy request page within 10 minutes"
            + (f":\n{page}" if page else "."),
            "",
            "If you did not ask us about your data, ignore this email: nothing happens "
            "without the code.",
        ]
        if agent is not None:
            # The person confirms the agent, not just the request: they must know who it is.
            designation = agent.strip()[:600]
            lines[4:] = [
                "An authorised agent made this request on your behalf. What they sent us about "
                "themselves and their authority:",
                "",
                f"  {designation}" if designation else "  (nothing yet)",
                "",
                "Give the code to the agent, or enter it yourself, only if you asked them to "
                "act for you. If you did not, ignore this email: nothing happens without the code.",
            ]
        await self.mailer.send(to, "Your privacy request code", "\n".join(lines))

    def _issue_code(
        self,
        s: AsyncSession,
        req: PrivacyRequest,
        channel: str,
        to: str,
        designation: str | None = None,
    ) -> str | None:
        """A one-time code for ``to``: texted at once to a phone; for an email, returned for the
        caller to send after the commit (None when it went by text)."""
        code = f"{secrets.randbelow(1_000_000):06d}"
        s.add(
            VerificationCode(
                organisation_id=req.organisation_id,
                request_id=req.id,
                code_hash=self._hash(req.id, code),
                channel=channel,
                expires_at=utcnow() + CODE_TTL,
                attempts=0,
            )
        )
        if channel == "phone":
            # The text is the acknowledgement too (R45): how to use the code, when we answer.
            due = (req.extended_due_at or req.due_at).date().isoformat()
            agent = ""
            if req.channel == "agent":
                who = " ".join((designation or "").split())[:80]
                agent = f"An agent asked about your data for you ({who}); only if you asked them: "
            self.sms(
                to,
                f"{agent}Your privacy request code: {code}. Enter it on the request page within "
                f"10 minutes; we answer by {due} at the latest.",
            )
            return None
        return code

    async def provide_designation(self, request_id: str, designation: str) -> PrivacyRequest:
        """An agent request that was missing its written designation gets it."""
        text = designation.strip()
        if len(text) < 10:
            raise InvalidInput("Give the agent's name and full contact details, and the mandate.")
        async with self.db.session(Scope.system()) as s:
            req = await s.get(PrivacyRequest, request_id)
            if req is None:
                raise NotFound("No such request.")
            waiting = req.state == State.REQUIRES_INPUT.value and req.channel == "agent"
            if not waiting or req.identity_verified_at is not None:
                raise InvalidState("This request is not waiting for a designation.")
            req.agent_designation = self.db.vault.seal(req.id, req.organisation_id, text)
            await self._to(s, req, State.IDENTITY_UNVERIFIED, None, "designation received")
            code, to = None, None
            if _matched(req):
                # The person confirms directly: the code goes to what is on file for them,
                # never to the contact the agent typed.
                typed = req.contact
                email = typed if typed and "@" in typed else None
                intake = Intake(req.kind, details=req.details)
                channel, to = await self._on_file(s, req, intake, email, None if email else typed)
                if channel is not None and to is not None:
                    req.contact = self.db.vault.seal(req.id, req.organisation_id, to)
                    code = self._issue_code(s, req, channel, to, text)
        if code and to and "@" in to:
            await self._send_code(to, request_id, code, text)
        return await self._load(request_id)

    # --- review (the controller's decision) -----------------------------------------------------

    async def approve(self, principal: Principal, request_id: str) -> PrivacyRequest:
        async with self.db.session(principal.scope) as s:
            req = await self._reviewable(s, principal, request_id)
            await self._to(s, req, State.APPROVED, principal.user_id, "approved")
            req.reviewed_by, req.reviewed_at = principal.user_id, utcnow()
        await self._fulfil(request_id, principal.user_id)
        return await self._load(request_id)

    async def deny(
        self, principal: Principal, request_id: str, reason: str, basis: str | None = None
    ) -> PrivacyRequest:
        """Refuse with a reason code (``DENIAL_BASES``) and a text the person reads (R53)."""
        reason = (reason or "").strip()
        if len(reason) < 5:
            raise InvalidInput("A denial needs a reason the person can read.")
        if basis not in DENIAL_BASES:
            raise InvalidInput("Choose the basis of the refusal (why the law lets you refuse).")
        async with self.db.session(principal.scope) as s:
            req = await self._reviewable(s, principal, request_id)
            note = f"denied: {DENIAL_BASES[basis]}"
            await self._to(s, req, State.DENIED, principal.user_id, note)
            req.decision_reason, req.denial_basis = reason[:2000], basis
            req.reviewed_by, req.reviewed_at = principal.user_id, utcnow()
            contact = req.contact
            self._clear(req)
        await self._tell(
            contact,
            "Your privacy request was refused",
            f"We cannot fulfil your request: {DENIAL_BASES[basis]}.\n\nReason: {reason}\n\n"
            f"{COMPLAINT_ROUTE}",
        )
        return await self._load(request_id)

    async def withdraw(self, request_id: str) -> PrivacyRequest:
        """The person cancels their request (from its page or the API) before it is carried out.
        Anyone holding the request's address can, so the person always hears of it."""
        contact = await self._cancel(request_id, None, "on the request's page")
        await self._tell(
            contact,
            "Your privacy request was cancelled",
            "Your privacy request was cancelled on its page. If you did not cancel it, make a "
            "new request: nothing was done with this one.",
        )
        return await self._load(request_id)

    async def close(self, principal: Principal, request_id: str) -> PrivacyRequest:
        """The client's staff close a request that failed and will not be tried again."""
        self._decider(principal)
        contact = await self._cancel(request_id, principal, "by the client's staff")
        await self._tell(
            contact,
            "Your privacy request was cancelled",
            "Your privacy request could not be carried out and was closed. " + COMPLAINT_ROUTE,
        )
        return await self._load(request_id)

    async def _cancel(self, request_id: str, principal: Principal | None, by: str) -> str | None:
        """End the request as cancelled and clear its personal data; returns whom to tell."""
        scope = principal.scope if principal else Scope.system()
        async with self.db.session(scope) as s:
            req = await s.scalar(  # a query, not get(): the caller's tenant scope applies to it
                select(PrivacyRequest).where(PrivacyRequest.id == request_id).with_for_update()
            )
            if req is None:
                raise NotFound("No such request.")
            if principal is not None and req.state != State.ERROR.value:
                raise InvalidState("Only a request that failed is closed this way: refuse it.")
            if principal is None and req.state in (State.IN_PROCESSING.value, State.ERROR.value):
                raise InvalidState("This request is already being carried out.")
            await self._to(s, req, State.CANCELED, principal.user_id if principal else None, by)
            contact = req.contact
            self._clear(req)
        return contact

    async def extend(self, principal: Principal, request_id: str, reason: str) -> PrivacyRequest:
        self._decider(principal)
        reason = (reason or "").strip()
        if len(reason) < 5:
            raise InvalidInput("An extension needs a reason the person can read.")
        now = utcnow()
        async with self.db.session(principal.scope) as s:
            req = await self._owned(s, principal, request_id)
            if State(req.state) in TERMINAL:
                raise InvalidState("This request is closed.")
            if req.extended_due_at is not None:
                raise InvalidState("This request was already extended once.")
            if not deadlines.may_extend(req.received_at, req.regime, now):
                raise InvalidState("An extension must be notified within the first period.")
            req.extended_due_at = deadlines.extended(req.received_at, req.regime)
            req.extension_reason = reason[:2000]
            await self._event(
                s, req, req.state, State(req.state), principal.user_id, "deadline extended"
            )
            contact, due = req.contact, req.extended_due_at
        await self._tell(
            contact,
            "Your privacy request: more time needed",
            f"We need more time to answer your request: {reason}\n\n"
            f"You will have our answer by {due.date().isoformat()}.",
        )
        return await self._load(request_id)

    async def _owned(
        self, s: AsyncSession, principal: Principal, request_id: str
    ) -> PrivacyRequest:
        req = await s.scalar(select(PrivacyRequest).where(PrivacyRequest.id == request_id))
        if req is None:
            raise NotFound("No such request.")
        return req

    @staticmethod
    def _decider(principal: Principal) -> None:
        if principal.role is Role.OPERATOR:
            raise Forbidden("Requests are decided by the client (the controller) or our admins.")

    async def _reviewable(
        self, s: AsyncSession, principal: Principal, request_id: str
    ) -> PrivacyRequest:
        req = await self._owned(s, principal, request_id)
        if principal.role is Role.OPERATOR:
            raise Forbidden("Requests are decided by the client (the controller) or our admins.")
        return req

    # --- fulfilment -----------------------------------------------------------------------------

    async def _fulfil(self, request_id: str, actor: str | None) -> None:
        """Carry the request out; a domain error (a value that does not fit, say) leaves it in
        ``error`` with the reason (the queue's "Failed" filter), not stuck as approved."""
        try:
            await self._carry_out_now(request_id, actor)
        except (ConfideError, ValueError) as exc:
            # Kept for ever in the request's history: the domain's own words, or only the type.
            message = exc.message if isinstance(exc, ConfideError) else type(exc).__name__
            async with self.db.session(Scope.system()) as s:
                req = await s.get(PrivacyRequest, request_id)
                assert req is not None
                if req.state == State.APPROVED.value:
                    await self._to(s, req, State.IN_PROCESSING, actor, "processing")
                if req.state == State.IN_PROCESSING.value:
                    await self._to(
                        s, req, State.ERROR, actor, f"could not be carried out: {message}"
                    )

    async def _carry_out_now(self, request_id: str, actor: str | None) -> None:
        now = utcnow()
        async with self.db.session(Scope.system()) as s:
            req = await s.get(PrivacyRequest, request_id)
            assert req is not None
            if req.state != State.IN_PROCESSING.value:
                await self._to(s, req, State.IN_PROCESSING, actor, "processing")
            subject = await fulfil.resolve(
                s, req.organisation_id, list(req.person_ids or []), list(req.visitor_ids or [])
            )
            note, token = await self._carry_out(s, req, subject, now)
            outcome = await self._outcome(s, req, actor, note, now)
        self.on_enqueued()
        if outcome is not None:
            await self._told_complete(req, outcome, token)

    async def _outcome(
        self, s: AsyncSession, req: PrivacyRequest, actor: str | None, note: str, now: datetime
    ) -> _Contact | None:
        """Where the erasure tasks leave the request (R51): complete when every task is done or
        skipped with a reason (returns the contact to tell, for after the commit), ``error``
        while one failed, in processing while one waits (a notice to a recipient, sent by the
        delivery worker)."""
        states = set(
            await s.scalars(select(ErasureTask.state).where(ErasureTask.request_id == req.id))
        )
        here = State(req.state)
        if "failed" in states:
            if here is not State.ERROR:
                failed = "an erasure task failed (see the tasks)"
                await self._to(s, req, State.ERROR, actor, f"{note}; {failed}" if note else failed)
            return None
        if here is State.ERROR:
            await self._to(s, req, State.IN_PROCESSING, actor, "failed erasure task retried")
        if "pending" in states:
            if here is State.IN_PROCESSING and note:
                await self._event(
                    s, req, req.state, State.IN_PROCESSING, actor, f"{note}; {WAITING}"
                )
            return None
        await self._to(s, req, State.COMPLETE, actor, note or "every erasure task finished")
        req.completed_at = now
        contact = _Contact(req.contact)
        self._clear(req)
        return contact

    async def _told_complete(
        self, req: PrivacyRequest, contact: _Contact, token: str | None
    ) -> None:
        await self._tell(
            contact.value, "Your privacy request is complete", self._result(req, token)
        )

    async def notice_settled(self, outbox_key: str) -> None:
        """The delivery worker finished (or gave up on) an erasure notice: settle the tasks
        that wait for it, and their requests."""
        async with self.db.session(Scope.system(), read_only=True) as s:
            request_ids = set(
                await s.scalars(
                    select(ErasureTask.request_id).where(ErasureTask.outbox_key == outbox_key)
                )
            )
        for request_id in sorted(request_ids):
            await self.settle(request_id)

    async def settle(self, request_id: str) -> None:
        """Bring a request whose erasure waits for notices up to date with the outbox."""
        now = utcnow()
        async with self.db.session(Scope.system()) as s:
            # Locked before its tasks are read: two notices of one request finishing at once
            # (two workers) must not each see the other still pending and leave it open.
            req = await s.get(PrivacyRequest, request_id, with_for_update=True)
            if req is None or State(req.state) not in (State.IN_PROCESSING, State.ERROR):
                return
            await fulfil.settle_notices(s, request_id, now)
            outcome = await self._outcome(s, req, None, "", now)
        if outcome is not None:
            await self._told_complete(req, outcome, None)

    async def _settle_open(self) -> int:
        """Requests still waiting for notices (a worker that stopped before telling us)."""
        async with self.db.session(Scope.system(), read_only=True) as s:
            waiting = set(
                await s.scalars(
                    select(PrivacyRequest.id)
                    .join(ErasureTask, ErasureTask.request_id == PrivacyRequest.id)
                    .where(
                        PrivacyRequest.state.in_((State.IN_PROCESSING.value, State.ERROR.value)),
                        ErasureTask.outbox_key.is_not(None),
                        ErasureTask.state.in_(("pending", "failed")),
                    )
                )
            )
        for request_id in sorted(waiting):
            await self.settle(request_id)
        return len(waiting)

    async def _carry_out(
        self, s: AsyncSession, req: PrivacyRequest, subject: Any, now: datetime
    ) -> tuple[str, str | None]:
        vault, kind = self.db.vault, req.kind
        if subject.empty:
            return "no data held for this identity", None
        if kind == "access":
            token = secrets.token_urlsafe(24)
            req.export_token_hash = hashlib.sha256(token.encode()).hexdigest()
            req.export_expires_at = now + EXPORT_TTL
            return "export ready for download", token
        if kind == "deletion":
            req.partial = await fulfil.erase(s, subject, req.id, vault, now)
            if req.partial:  # kept under a legal hold: a refusal in part, with its basis (R41)
                req.denial_basis = "legal_obligation"
                req.decision_reason = "Part of the information is kept under a legal hold."
            return ("partly erased (legal hold)" if req.partial else "erased"), None
        if kind == "correction":
            sent = await fulfil.correct(s, subject, req.details or "", vault, now)
            return f"corrected; {sent} corrected lead(s) sent to recipients", None
        if kind == "withdraw_consent":
            n = await fulfil.withdraw_consent(s, subject, now)
            return f"consent withdrawn in {n} conversation(s)", None
        await fulfil.set_flag(s, subject, kind, now)
        return f"{kind.replace('_', ' ')} recorded", None

    async def _tell(self, contact: str | None, subject: str, body: str) -> None:
        """Answer on the channel that was verified: email, or a text message to the phone."""
        if not contact:
            return
        if "@" in contact:
            await self.mailer.send(contact, subject, body)
        else:
            self.sms(contact, f"{subject}. {body}"[:1000])

    def _result(self, req: PrivacyRequest, token: str | None) -> str:
        if token:
            base = (self.settings.public_url or self.settings.email_link_base).rstrip("/")
            link = f"{base}/privacy/requests/{req.id}/export?token={token}"
            kinds = req.access_scope == "categories"
            what = "list of the kinds of information" if kinds else "copy of the information"
            return (
                f"Your {what} we hold is ready. Download it within 7 days (JSON, to keep or "
                f"give to another service):\n\n{link}\n\n"
                f"Or read it in your browser:\n{link}&format=html\n"
            )
        note = "Your request has been carried out."
        if req.partial:
            note += (
                " Part of the information is kept because of a legal obligation (a legal hold); "
                "it will be erased when the hold ends. " + COMPLAINT_ROUTE
            )
        return note

    async def export_package(self, request_id: str, token: str) -> dict[str, Any]:
        """The access package (JSON with a manifest) for the holder of the emailed token."""
        now = utcnow()
        async with self.db.session(Scope.system(), read_only=True) as s:
            req = await s.get(PrivacyRequest, request_id)
            valid = (
                req is not None
                and req.export_token_hash is not None
                and req.export_expires_at is not None
                and req.export_expires_at > now
                and hmac.compare_digest(
                    req.export_token_hash, hashlib.sha256(token.encode()).hexdigest()
                )
            )
            if not valid or req is None:
                raise NotFound("This download link is not valid or has expired.")
            subject = await fulfil.resolve(
                s, req.organisation_id, list(req.person_ids or []), list(req.visitor_ids or [])
            )
            data = await fulfil.export(s, subject)
            org = await s.get(Organisation, req.organisation_id)
        manifest = {
            "request": req.id,
            "organisation": org.name if org else None,
            "generated_at": iso(now),
            "format": "confide-access-package/1",
            "scope": req.access_scope,
            "stores": {name: len(rows) for name, rows in data.items()},
            "disclosures": "see stores.outbox (deliveries) and leads[].onward_transfers",
        }
        # Handing the package over is a read of personal data like any other (R39).
        await audit.AuditLog(self.db).record(
            audit.Actor(None, "data_subject"),
            "privacy_request.export_download",
            organisation_id=req.organisation_id,
            subject_kind="request",
            subject_ref=req.id,
            fields=sorted(name for name, rows in data.items() if rows),
            purpose=f"access request: {req.access_scope} (the person's own download)",
        )
        if req.access_scope == "categories":
            # The kinds of data held, store by store, without a single value (R47).
            manifest["disclosures"] = "see categories.outbox and categories.leads"
            return {"manifest": manifest, "categories": fulfil.categories_of(data)}
        return {"manifest": manifest, "data": data}

    # --- reading --------------------------------------------------------------------------------

    async def queue(self, principal: Principal, state: str | None = None) -> list[dict[str, Any]]:
        self._decider(principal)
        now = utcnow()
        async with self.db.session(principal.scope, read_only=True) as s:
            q = select(PrivacyRequest).order_by(PrivacyRequest.due_at)
            if state:
                q = q.where(PrivacyRequest.state == state)
            rows = list(await s.scalars(q.limit(500)))
        return [request_dict(r, now) for r in rows]

    async def detail(self, principal: Principal, request_id: str) -> dict[str, Any]:
        self._decider(principal)
        now = utcnow()
        async with self.db.session(principal.scope, read_only=True) as s:
            req = await self._owned(s, principal, request_id)
            events = list(
                await s.scalars(
                    select(RequestEvent)
                    .where(RequestEvent.request_id == request_id)
                    .order_by(RequestEvent.id)
                )
            )
            tasks = list(
                await s.scalars(
                    select(ErasureTask)
                    .where(ErasureTask.request_id == request_id)
                    .order_by(ErasureTask.id)
                )
            )
        out = request_dict(req, now)
        out["details"] = req.details
        out["agent_designation"] = req.agent_designation
        out["events"] = [
            {
                "at": iso(e.at),
                "from": e.from_state,
                "to": e.to_state,
                "actor": e.actor_id,
                "note": e.note,
            }
            for e in events
        ]
        out["tasks"] = [
            {
                "store": t.store,
                "state": t.state,
                "method": t.method,
                "rows": t.rows,
                "reason": t.reason,
            }
            for t in tasks
        ]
        return out

    async def _load(self, request_id: str) -> PrivacyRequest:
        async with self.db.session(Scope.system(), read_only=True) as s:
            req = await s.get(PrivacyRequest, request_id)
            assert req is not None
            s.expunge(req)
            return req

    async def remind(self, now: datetime | None = None) -> int:
        """Emails to the client's users at 50 % and 80 % of a request's time (R46)."""
        now = now or utcnow()
        sent: list[tuple[str, str, str]] = []
        async with self.db.session(Scope.system()) as s:
            open_states = [st.value for st in State if st not in TERMINAL]
            rows = list(
                await s.scalars(select(PrivacyRequest).where(PrivacyRequest.state.in_(open_states)))
            )
            for req in rows:
                due = req.extended_due_at or req.due_at
                share = deadlines.elapsed_share(req.received_at, due, now)
                mark = None
                if share >= 0.8 and req.reminded_80_at is None:
                    req.reminded_80_at, mark = now, "80 %"
                    req.reminded_50_at = req.reminded_50_at or now
                elif share >= 0.5 and req.reminded_50_at is None:
                    req.reminded_50_at, mark = now, "50 %"
                if mark is None:
                    continue
                users = await s.scalars(
                    select(User.email).where(
                        User.organisation_id == req.organisation_id, User.role == Role.CLIENT.value
                    )
                )
                for email in users:
                    sent.append(
                        (email, req.id, f"{mark} of the time used; due {due.date().isoformat()}")
                    )
        for email, rid, text in sent:
            await self.mailer.send(
                email, "A privacy request needs your decision", f"Request {rid}: {text}."
            )
        await self._acknowledge_missing(open_states)
        await self._settle_open()
        return len(sent)

    async def _acknowledge_missing(self, open_states: list[str]) -> int:
        """Acknowledgements that could not be sent when the request came in (the mail relay
        was down): tried again, to the contact the request holds."""
        async with self.db.session(Scope.system(), read_only=True) as s:
            rows = (
                await s.execute(
                    select(PrivacyRequest, Organisation.name)
                    .join(Organisation, Organisation.id == PrivacyRequest.organisation_id)
                    .where(
                        PrivacyRequest.state.in_(open_states),
                        PrivacyRequest.acknowledged_at.is_(None),
                    )
                )
            ).all()
        return sum([await self._acknowledge(req, req.contact, org) for req, org in rows])

    # --- helpers ----------------------------------------------------------------------------------

    async def _to(
        self, s: AsyncSession, req: PrivacyRequest, target: State, actor: str | None, note: str
    ) -> None:
        verified = req.identity_verified_at is not None or bool(req.power_of_attorney)
        new = move(req.state, target, verified=verified, kind=req.kind)
        await self._event(s, req, req.state, new, actor, note)
        req.state = new.value

    async def _event(
        self,
        s: AsyncSession,
        req: PrivacyRequest,
        old: str | None,
        new: State,
        actor: str | None,
        note: str,
    ) -> None:
        s.add(
            RequestEvent(
                organisation_id=req.organisation_id,
                request_id=req.id,
                at=utcnow(),
                from_state=old,
                to_state=new.value,
                actor_id=actor,
                note=note[:500],
            )
        )
        await audit.append(
            s,
            audit.Actor(actor, "user" if actor else "system"),
            f"privacy_request.{new.value}",
            organisation_id=req.organisation_id,
            subject_kind="request",
            subject_ref=req.id,
            purpose=f"{req.kind}: {note}"[:500],
        )

    def _clear(self, req: PrivacyRequest) -> None:
        """The request is kept (24 months) without personal data beyond the blind indexes, and
        the key its personal fields were sealed with is destroyed: earlier copies of the row (a
        backup, old row versions) can no longer be read either."""
        req.contact = None
        req.details = None
        req.agent_designation = None
        req.identity_facts = None
        self.db.vault.destroy_subject(req.id)


#: The note on a request whose erasure is done but whose notices are still being sent.
WAITING = "waiting for the erasure notices to recipients to be delivered"


@dataclass(frozen=True)
class _Contact:
    """Whom to tell that the request is complete (read before the request is cleared)."""

    value: str | None


async def _persons(s: AsyncSession, req: PrivacyRequest) -> list[Person]:
    """The persons on file the request is about (as narrowed so far)."""
    return list(await s.scalars(select(Person).where(Person.id.in_(req.person_ids))))


def _correcting(req: PrivacyRequest, intake: Intake) -> str | None:
    """The field a correction changes: never the one its code may be sent to."""
    return fulfil.parse_correction(intake.details or "")[0] if req.kind == "correction" else None


def _matched(req: PrivacyRequest) -> bool:
    """The identity leads to data we hold: a person on file, or a visitor's chat."""
    return bool(req.person_ids or req.visitor_ids)


def request_dict(req: PrivacyRequest, now: datetime) -> dict[str, Any]:
    due = req.extended_due_at or req.due_at
    open_ = State(req.state) not in TERMINAL
    return {
        "id": req.id,
        "organisation_id": req.organisation_id,
        "kind": req.kind,
        "regime": req.regime,
        "state": req.state,
        "channel": req.channel,
        "matched": _matched(req),
        "received_at": iso(req.received_at),
        "acknowledged_at": iso(req.acknowledged_at) if req.acknowledged_at else None,
        "identity_verified_at": iso(req.identity_verified_at) if req.identity_verified_at else None,
        "due_at": iso(due),
        "extended": req.extended_due_at is not None,
        "extension_reason": req.extension_reason,
        "overdue": open_ and due < now,
        "due_soon": open_
        and due >= now
        and deadlines.elapsed_share(req.received_at, due, now) >= 0.8,
        "decision_reason": req.decision_reason,
        "denial_basis": req.denial_basis,
        "completed_at": iso(req.completed_at) if req.completed_at else None,
        "partial": req.partial,
        "power_of_attorney": req.power_of_attorney,
        "access_scope": req.access_scope if req.kind == "access" else None,
        "data_points": req.data_points,
        "declared": req.declared_at is not None,
        "needs": still_needed(req),
    }


def still_needed(req: PrivacyRequest) -> str | None:
    """What a verified requester still has to give (R47), in words; None when nothing."""
    if req.state != State.REQUIRES_INPUT.value or req.identity_verified_at is None:
        return None
    return certainty.needed(req.kind, req.regime, req.access_scope).explain()
