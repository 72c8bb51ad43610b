"""Build the :class:`LeadSnapshot` a destination receives, from the stored lead, at send time."""

from __future__ import annotations

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from confide.accounts.models import Organisation
from confide.chat.models import Message
from confide.delivery.snapshot import (
    ConsentRef,
    Contact,
    LeadSnapshot,
    TranscriptLine,
    Vehicle,
)
from confide.errors import NotFound
from confide.leads.models import ConsentRecord, Lead, Person
from confide.sites.models import Site


def vehicle_from_json(raw: str | None) -> Vehicle | None:
    if not raw:
        return None
    data = orjson.loads(raw)
    return Vehicle(
        **{k: data.get(k) for k in ("status", "year", "make", "model", "stock")},
        interest=data.get("interest") or "buy",
    )


def contact_of(person: Person) -> Contact:
    return Contact(
        name=person.name,
        email=person.email,
        phone=person.phone,
        address=person.address,
        city=person.city,
        postcode=person.postcode,
        country=person.country,
    )


async def transcript_lines(
    s: AsyncSession, conversation_id: str | None
) -> tuple[TranscriptLine, ...]:
    if conversation_id is None:
        return ()
    rows = await s.scalars(
        select(Message).where(Message.conversation_id == conversation_id).order_by(Message.seq)
    )
    return tuple(
        TranscriptLine(
            at=m.created_at,
            role=m.author_role,
            author={"visitor": "Visitor", "agent": "Agent", "system": "Confide"}.get(
                m.author_role, m.author_role
            ),
            text=m.text,
        )
        for m in rows
    )


async def lead_snapshot(s: AsyncSession, lead_id: str, *, status: str = "new") -> LeadSnapshot:
    lead = await s.get(Lead, lead_id)
    if lead is None:
        raise NotFound("No such lead.")
    person = await s.get(Person, lead.person_id)
    site = await s.get(Site, lead.site_id)
    org = await s.get(Organisation, lead.organisation_id)
    consent = await s.get(ConsentRecord, lead.consent_id) if lead.consent_id else None
    if person is None or site is None or org is None or consent is None:
        raise NotFound("The lead is incomplete (no person, site or consent).")
    origins = site.allowed_origins or []
    return LeadSnapshot(
        lead_id=lead.id,
        status=status,
        created_at=lead.created_at,
        organisation_name=org.name,
        site_name=site.name,
        site_url=origins[0] if origins else None,
        purpose=lead.purpose,
        contact=contact_of(person),
        vehicle=vehicle_from_json(lead.vehicle),
        trade_in=vehicle_from_json(lead.trade_in),
        comments=lead.comments,
        sale_share_opt_out=lead.sale_share_opt_out or person.sale_share_opt_out,
        marketing_objection=person.marketing_objection,
        consent=ConsentRef(
            record_id=consent.id,
            given_at=consent.answered_at,
            policy_version=consent.policy_version,
            text_sha256=consent.text_sha256,
        ),
        transcript=await transcript_lines(s, lead.conversation_id),
    )
