"""The read side of leads and the client's workflow on them (portal and console).

Every read runs in the caller's scope, so a client user sees only their organisation's leads and
an operator only their sites'. Clients see a lead only once it was released to them with consent
(policy 2.3): before that it is the operator's working copy, not the client's data.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from confide.accounts.models import Role, User
from confide.accounts.principal import Principal
from confide.audit import log as audit_log
from confide.audit.log import Actor, AuditLog
from confide.chat.models import Conversation, Message
from confide.chat.service import ChatService
from confide.chat.views import iso
from confide.clock import utcnow
from confide.delivery.models import DeliveryAttempt, Destination, OutboxJob
from confide.errors import Forbidden, InvalidInput, InvalidState, NotFound
from confide.ids import new_id
from confide.leads.consent import ConsentState
from confide.leads.fields import PURPOSE_LABELS
from confide.leads.models import (
    CONTACT_FIELDS,
    ConsentRecord,
    Lead,
    OnwardTransfer,
    Person,
    PersonChange,
)
from confide.leads.service import LeadService, consent_state_of
from confide.sites.models import Site
from confide.storage.engine import Database
from confide.tracking.models import Visit

STATUSES = ("new", "contacted", "closed")
#: The client's workflow; "rejected" does not exist: no automated decision can refuse a lead (R32).
TRANSITIONS = {"new": {"contacted", "closed"}, "contacted": {"closed", "new"}, "closed": {"new"}}
PAGE = 50


def _iso(at: datetime | None) -> str | None:
    return iso(at) if at else None


def person_dict(p: Person | None) -> dict[str, Any] | None:
    if p is None:
        return None
    out: dict[str, Any] = {k: getattr(p, k) for k in CONTACT_FIELDS}
    out.update(
        id=p.id,
        sale_share_opt_out=p.sale_share_opt_out,
        marketing_objection=p.marketing_objection,
        minor=p.minor,
        created_at=iso(p.created_at),
    )
    return out


def lead_dict(
    lead: Lead, site_name: str | None = None, person: Person | None = None
) -> dict[str, Any]:
    return {
        "id": lead.id,
        "site": {"id": lead.site_id, "name": site_name},
        "conversation_id": lead.conversation_id,
        "purpose": lead.purpose,
        "purpose_label": PURPOSE_LABELS.get(lead.purpose, lead.purpose),
        "vehicle": orjson.loads(lead.vehicle) if lead.vehicle else None,
        "trade_in": orjson.loads(lead.trade_in) if lead.trade_in else None,
        "comments": lead.comments,
        "status": lead.status,
        "delivery_state": lead.delivery_state,
        "sale_share_opt_out": lead.sale_share_opt_out,
        "consent_id": lead.consent_id,
        "created_at": iso(lead.created_at),
        "delivered_at": _iso(lead.delivered_at),
        "person": person_dict(person),
    }


def consent_dict(state: ConsentState) -> dict[str, Any]:
    frame = state.frame("")
    frame.pop("type")
    frame.pop("conversation")
    return frame


#: The personal fields a lead or panel shows (recorded, by name, in the audit log).
SHOWN = [*CONTACT_FIELDS, "transcript", "vehicle", "comments"]


class LeadRecords:
    def __init__(self, db: Database, chat: ChatService, leads: LeadService) -> None:
        self.db = db
        self.chat = chat
        self.leads = leads
        self.audit = AuditLog(db)

    async def _audit(
        self,
        principal: Principal,
        action: str,
        organisation_id: str | None,
        kind: str,
        ref: str | None,
        purpose: str,
        fields: list[str] | None = None,
    ) -> None:
        """Every read of personal data is recorded: who, whose, which fields, why (R39)."""
        await self.audit.record(
            Actor.of(principal),
            action,
            organisation_id=organisation_id,
            subject_kind=kind,
            subject_ref=ref,
            fields=fields if fields is not None else SHOWN,
            purpose=purpose,
        )

    # --- the console's lead panel -------------------------------------------------------------

    async def panel(self, principal: Principal, conversation_id: str) -> dict[str, Any]:
        """Everything the operator's lead panel shows for one chat."""
        ref = await self.chat.authorise(principal, conversation_id)
        suggestions = await self.leads.suggestions(principal, ref.id)
        async with self.db.session(principal.scope, read_only=True) as s:
            conv = await s.scalar(select(Conversation).where(Conversation.id == ref.id))
            assert conv is not None
            person = (
                await s.scalar(select(Person).where(Person.id == conv.person_id))
                if conv.person_id
                else None
            )
            history = await _history(s, person.id) if person else []
            leads = list(
                await s.scalars(
                    select(Lead).where(Lead.conversation_id == ref.id).order_by(Lead.created_at)
                )
            )
            earlier = await _earlier(s, conv)
            state = await consent_state_of(s, ref.id)
        await self._audit(
            principal,
            "personal_data.view",
            ref.organisation_id,
            "conversation",
            ref.id,
            "lead capture in the chat (console lead panel)",
        )
        return {
            "conversation_id": ref.id,
            "person": person_dict(person),
            "history": history,
            "suggestions": suggestions,
            "consent": consent_dict(state),
            "leads": [lead_dict(x) for x in leads],
            "earlier": earlier,
        }

    # --- the client's leads ----------------------------------------------------------------------

    def _visible(self, principal: Principal) -> Select[Lead, str, Person]:
        q = (
            select(Lead, Site.name, Person)
            .join(Site, Site.id == Lead.site_id)
            .join(Person, Person.id == Lead.person_id)
        )
        if principal.role is Role.CLIENT:
            q = q.where(Lead.consent_id.is_not(None), Lead.delivery_state != "withdrawn")
        return q

    async def list(
        self,
        principal: Principal,
        *,
        status: str | None = None,
        site_id: str | None = None,
        page: int = 0,
    ) -> tuple[list[dict[str, Any]], bool]:
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"Status must be one of {', '.join(STATUSES)}.")
        q = self._visible(principal)
        if status:
            q = q.where(Lead.status == status)
        if site_id:
            q = q.where(Lead.site_id == site_id)
        q = q.order_by(Lead.created_at.desc(), Lead.id.desc()).offset(page * PAGE).limit(PAGE + 1)
        async with self.db.session(principal.scope, read_only=True) as s:
            rows = (await s.execute(q)).all()
        out = [lead_dict(lead, name, person) for lead, name, person in rows[:PAGE]]
        if out:
            await self._audit(
                principal,
                "lead.list",
                principal.organisation_id,
                "leads",
                f"{len(out)} leads",
                "leads list",
                [*CONTACT_FIELDS, "vehicle"],
            )
        return out, len(rows) > PAGE

    async def detail(self, principal: Principal, lead_id: str) -> dict[str, Any]:
        """The lead with its transcript, visit, consent evidence, deliveries and transfers."""
        async with self.db.session(principal.scope, read_only=True) as s:
            row = (await s.execute(self._visible(principal).where(Lead.id == lead_id))).first()
            if row is None:
                raise NotFound("No such lead.")
            lead, site_name, person = row
            out = lead_dict(lead, site_name, person)
            out["history"] = await _history(s, person.id)
            out["consent"] = await _consent_records(s, lead.conversation_id)
            out["transcript"] = await _transcript(s, lead.conversation_id)
            out["deliveries"] = await _deliveries(s, lead.id)
            out["transfers"] = await _transfers(s, lead.id)
            out["visit_id"] = lead.visit_id
            conv = (
                await s.scalar(select(Conversation).where(Conversation.id == lead.conversation_id))
                if lead.conversation_id
                else None
            )
            out["rating"] = (
                {"score": conv.rating, "comment": conv.rating_comment}
                if conv is not None and conv.rating
                else None
            )
        await self._audit(
            principal, "lead.view", lead.organisation_id, "lead", lead.id, "lead detail"
        )
        return out

    async def set_status(self, principal: Principal, lead_id: str, status: str) -> dict[str, Any]:
        if status not in STATUSES:
            raise InvalidInput(f"Status must be one of {', '.join(STATUSES)}.")
        async with self.db.session(principal.scope) as s:
            row = (await s.execute(self._visible(principal).where(Lead.id == lead_id))).first()
            if row is None:
                raise NotFound("No such lead.")
            lead, site_name, person = row
            if status != lead.status:
                if status not in TRANSITIONS[lead.status]:
                    raise InvalidState(f"A {lead.status} lead cannot become {status}.")
                lead.status = status
                lead.updated_at = utcnow()
            await s.flush()
            return lead_dict(lead, site_name, person)

    async def forward(
        self,
        principal: Principal,
        lead_id: str,
        *,
        recipient_name: str,
        recipient_contact: str,
        reason: str,
    ) -> dict[str, Any]:
        """Record an onward transfer at the visitor's request (policy 3.3, R29)."""
        if principal.role is Role.OPERATOR:
            raise Forbidden("Only the client's own staff can forward their leads.")
        name, contact, why = (x.strip() for x in (recipient_name, recipient_contact, reason))
        if not 2 <= len(name) <= 200 or not 3 <= len(contact) <= 200:
            raise InvalidInput("Give the receiving organisation's name and contact details.")
        if not 5 <= len(why) <= 2000:
            raise InvalidInput("Say why: the visitor's request, in a sentence or more.")
        async with self.db.session(principal.scope) as s:
            row = (await s.execute(self._visible(principal).where(Lead.id == lead_id))).first()
            if row is None:
                raise NotFound("No such lead.")
            lead, person = row[0], row[2]
            if person.restricted:
                raise InvalidState(
                    "The visitor has restricted the processing of their data: it is not "
                    "passed on while the restriction lasts."
                )
            if lead.consent_id is None or lead.delivery_state == "withdrawn":
                raise InvalidState("The visitor's consent to pass on their details is withdrawn.")
            subject = person.visitor_id or person.id
            transfer = OnwardTransfer(
                id=new_id(),
                organisation_id=lead.organisation_id,
                site_id=lead.site_id,
                lead_id=lead.id,
                recipient_name=name,
                recipient_contact=contact,
                reason=self.db.vault.seal(subject, lead.organisation_id, why),
                requested_by=principal.user_id,
                at=utcnow(),
            )
            s.add(transfer)
            await audit_log.append(
                s,
                Actor.of(principal),
                "lead.forward",
                organisation_id=lead.organisation_id,
                subject_kind="lead",
                subject_ref=lead.id,
                fields=[*CONTACT_FIELDS, "vehicle"],
                purpose=f"onward transfer to {name} at the visitor's request",
            )
            await s.flush()
            shown = (await _transfers(s, lead.id))[-1]
            return {**shown, "reason": why}  # the row in memory holds the sealed text

    async def csv_export(
        self, principal: Principal, *, status: str | None = None, site_id: str | None = None
    ) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(
            [
                "id",
                "created_at",
                "site",
                "purpose",
                "status",
                "name",
                "email",
                "phone",
                "postcode",
                "vehicle",
                "sale_share_opt_out",
                "marketing_objection",
            ]
        )
        page = 0
        while True:
            rows, more = await self.list(principal, status=status, site_id=site_id, page=page)
            for r in rows:
                p = r["person"] or {}
                car = r["vehicle"] or {}
                vehicle = " ".join(str(car.get(k) or "") for k in ("year", "make", "model")).strip()
                cells = [
                    r["id"],
                    r["created_at"],
                    r["site"]["name"],
                    r["purpose_label"],
                    r["status"],
                    *(p.get(k) for k in ("name", "email", "phone", "postcode")),
                    vehicle,
                    "yes" if r["sale_share_opt_out"] else "no",
                    "yes" if p.get("marketing_objection") else "no",  # R30: never market to them
                ]
                w.writerow([_cell(c) for c in cells])
            if not more:
                break
            page += 1
        await self._audit(
            principal,
            "lead.export",
            principal.organisation_id,
            "leads",
            f"csv status={status}",
            "CSV export of leads",
            [*CONTACT_FIELDS, "vehicle"],
        )
        return buf.getvalue()


def _cell(value: object) -> str:
    """Spreadsheet formula injection: a cell starting with = + - @ is read as text."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


async def _history(s: AsyncSession, person_id: str) -> list[dict[str, Any]]:
    rows = await s.execute(
        select(PersonChange, User.name)
        .outerjoin(User, User.id == PersonChange.actor_id)
        .where(PersonChange.person_id == person_id)
        .order_by(PersonChange.id)
    )
    return [
        {
            "field": c.field_name,
            "value": c.value,
            "source": c.source,
            "by": name,
            "at": iso(c.at),
        }
        for c, name in rows.all()
    ]


async def _earlier(s: AsyncSession, conv: Conversation) -> list[dict[str, Any]]:
    """The visitor's other conversations (attached when a returning visitor chats, R24): by
    chat visitor, by person, and by browser (the tracking cookie's visitor of the chat's visit,
    which outlives the chat's session-scoped token)."""
    who = Conversation.visitor_id == conv.visitor_id
    if conv.person_id:
        who = or_(who, Conversation.person_id == conv.person_id)
    if conv.visit_id:
        browser = select(Visit.site_visitor_id).where(Visit.id == conv.visit_id).scalar_subquery()
        same_browser = select(Visit.conversation_id).where(
            Visit.site_visitor_id == browser, Visit.conversation_id.is_not(None)
        )
        who = or_(who, Conversation.id.in_(same_browser))
    count = select(func.count()).where(Message.conversation_id == Conversation.id).scalar_subquery()
    rows = await s.execute(
        select(Conversation.id, Conversation.created_at, Conversation.state, count)
        .where(who, Conversation.id != conv.id)
        .order_by(Conversation.created_at.desc())
        .limit(20)
    )
    out = []
    for cid, at, state, n in rows.all():
        messages = await _transcript(s, cid)
        out.append(
            {
                "id": cid,
                "created_at": iso(at),
                "state": state,
                "message_count": int(n),
                "messages": messages[-50:],
            }
        )
    return out


async def _transcript(s: AsyncSession, conversation_id: str | None) -> list[dict[str, Any]]:
    if conversation_id is None:
        return []
    rows = await s.scalars(
        select(Message).where(Message.conversation_id == conversation_id).order_by(Message.seq)
    )
    return [
        {"seq": m.seq, "role": m.author_role, "text": m.text, "at": iso(m.created_at)} for m in rows
    ]


async def _consent_records(s: AsyncSession, conversation_id: str | None) -> list[dict[str, Any]]:
    if conversation_id is None:
        return []
    rows = await s.scalars(
        select(ConsentRecord)
        .where(ConsentRecord.conversation_id == conversation_id)
        .order_by(ConsentRecord.answered_at)
    )
    return [
        {
            "id": r.id,
            "answer": r.answer,
            "text": r.text,
            "text_sha256": r.text_sha256,
            "policy_version": r.policy_version,
            "channel": r.channel,
            "language": r.language,
            "message_seq": r.message_seq,
            "answered_at": iso(r.answered_at),
        }
        for r in rows
    ]


async def _deliveries(s: AsyncSession, lead_id: str) -> list[dict[str, Any]]:
    rows = await s.execute(
        select(OutboxJob, Destination.name, Destination.kind, Destination.region)
        .join(Destination, Destination.id == OutboxJob.destination_id)
        .where(OutboxJob.lead_id == lead_id)
        .order_by(OutboxJob.id)
    )
    out = []
    for job, name, kind, region in rows.all():
        attempts = await s.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.job_id == job.id)
            .order_by(DeliveryAttempt.id)
        )
        out.append(
            {
                "id": job.id,
                "destination": {"name": name, "kind": kind, "region": region},
                "event": job.event,
                "state": job.state,
                "attempts": job.attempts,
                "last_error": job.last_error,
                "next_attempt_at": _iso(job.next_attempt_at),
                "done_at": _iso(job.done_at),
                "log": [
                    {
                        "attempt": a.attempt,
                        "outcome": a.outcome,
                        "detail": a.detail,
                        "at": iso(a.at),
                    }
                    for a in attempts
                ],
            }
        )
    return out


async def _transfers(s: AsyncSession, lead_id: str) -> list[dict[str, Any]]:
    rows = await s.execute(
        select(OnwardTransfer, User.name)
        .outerjoin(User, User.id == OnwardTransfer.requested_by)
        .where(OnwardTransfer.lead_id == lead_id)
        .order_by(OnwardTransfer.at)
    )
    return [
        {
            "id": t.id,
            "recipient_name": t.recipient_name,
            "recipient_contact": t.recipient_contact,
            "reason": t.reason,
            "by": name,
            "at": iso(t.at),
        }
        for t, name in rows.all()
    ]
