"""Leads' personal data in the privacy registry: persons, their history, leads, consent
evidence and onward transfers (with the disclosures a subject may ask about)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, or_
from sqlalchemy.ext.asyncio import AsyncSession

from confide.leads.models import ConsentRecord, Lead, OnwardTransfer, Person, PersonChange
from confide.privacy.registry import Store, Subject, register, rows_of

_HELD = frozenset({"person", "lead", "organisation"})


def _consent_of(subject: Subject) -> Any:
    return or_(
        ConsentRecord.person_id.in_(subject.person_ids),
        ConsentRecord.visitor_id.in_(subject.visitor_ids),
        ConsentRecord.conversation_id.in_(subject.conversation_ids),
    )


async def _export_persons(s: AsyncSession, subject: Subject) -> list[dict[str, Any]]:
    persons = await rows_of(s, Person, Person.id.in_(subject.person_ids))
    history = await rows_of(s, PersonChange, PersonChange.person_id.in_(subject.person_ids))
    for p in persons:
        p.pop("email_index", None)
        p.pop("phone_index", None)
        p["history"] = [
            {k: h[k] for k in ("field_name", "value", "source", "at")}
            for h in history
            if h["person_id"] == p["id"]
        ]
    return persons


async def _erase_persons(s: AsyncSession, subject: Subject) -> int:
    n = (
        await s.execute(delete(PersonChange).where(PersonChange.person_id.in_(subject.person_ids)))
    ).rowcount or 0  # type: ignore[attr-defined]
    n += (await s.execute(delete(Person).where(Person.id.in_(subject.person_ids)))).rowcount or 0  # type: ignore[attr-defined]
    return int(n)


async def _export_leads(s: AsyncSession, subject: Subject) -> list[dict[str, Any]]:
    leads = await rows_of(s, Lead, Lead.id.in_(subject.lead_ids))
    transfers = await rows_of(s, OnwardTransfer, OnwardTransfer.lead_id.in_(subject.lead_ids))
    for lead in leads:
        lead["onward_transfers"] = [t for t in transfers if t["lead_id"] == lead["id"]]
    return leads


async def _erase_leads(s: AsyncSession, subject: Subject) -> int:
    n = (
        await s.execute(delete(OnwardTransfer).where(OnwardTransfer.lead_id.in_(subject.lead_ids)))
    ).rowcount or 0  # type: ignore[attr-defined]
    n += (await s.execute(delete(Lead).where(Lead.id.in_(subject.lead_ids)))).rowcount or 0  # type: ignore[attr-defined]
    return int(n)


async def _export_consent(s: AsyncSession, subject: Subject) -> list[dict[str, Any]]:
    return await rows_of(s, ConsentRecord, _consent_of(subject))


async def _erase_consent(s: AsyncSession, subject: Subject) -> int:
    result = await s.execute(delete(ConsentRecord).where(_consent_of(subject)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


register(
    Store(
        "leads", ("leads", "onward_transfers"), _export_leads, _erase_leads, held_by=_HELD, order=10
    )
)
register(
    Store(
        "consent_records",
        ("consent_records",),
        _export_consent,
        _erase_consent,
        held_by=_HELD,
        order=15,
    )
)
register(
    Store(
        "persons",
        ("persons", "person_changes"),
        _export_persons,
        _erase_persons,
        held_by=_HELD,
        order=70,
    )
)
