"""A Global Privacy Control signal seen in a chat: an opt-out of sale/sharing for the visitor
and for every person they are known as (CCPA §7025(c)(1), R13-R16).

Why here and not only at lead creation: the signal may first appear after the visitor gave
their details (a later session, a browser setting switched on), and "if known, also treat it as
a request for the consumer" means the person and their leads are flagged from then on. A later
session without the signal never clears the flag (R16): nothing here sets it back to False.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from confide.chat.models import Visitor
from confide.leads.models import Lead, Person


async def honour_gpc(
    s: AsyncSession, visitor_id: str, person_id: str | None, now: datetime
) -> None:
    """Flag the chat visitor, the persons they gave details as (or are attached to), and
    those persons' leads: deliveries not yet made carry the opt-out (ADF, email, webhook)."""
    await s.execute(update(Visitor).where(Visitor.id == visitor_id).values(gpc=True))
    who = Person.visitor_id == visitor_id
    if person_id is not None:
        who = or_(who, Person.id == person_id)
    persons = list(await s.scalars(select(Person.id).where(who)))
    if not persons:
        return
    await s.execute(
        update(Person)
        .where(Person.id.in_(persons), Person.sale_share_opt_out.is_(False))
        .values(sale_share_opt_out=True, updated_at=now)
    )
    await s.execute(
        update(Lead)
        .where(Lead.person_id.in_(persons), Lead.sale_share_opt_out.is_(False))
        .values(sale_share_opt_out=True)
    )
