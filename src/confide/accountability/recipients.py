"""The one place that decides who is told: client admins, and newsletter subscribers.

A "client admin" is every user with the ``client`` role: each client organisation's own staff
(our staff, admins and operators, belong to no organisation and are never recipients of notices
meant for the controller). Subscribers are read from their own table, never joined to users (R58).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from confide.accountability.models import NewsletterSubscription
from confide.accounts.models import Organisation, Role, User
from confide.crypto.vault import ERASED


@dataclass(frozen=True)
class Recipient:
    kind: str  # user or subscriber
    id: str
    email: str
    organisation_id: str | None = None
    #: Subscribers: the token of their unsubscribe link.
    unsubscribe_token: str | None = None


async def client_admins(
    s: AsyncSession, organisation_ids: list[str] | None = None
) -> list[Recipient]:
    """Client users of ``organisation_ids`` (None: of every organisation), by organisation."""
    q = (
        select(User.id, User.email, User.organisation_id)
        .join(Organisation, Organisation.id == User.organisation_id)
        .where(User.role == Role.CLIENT.value, Organisation.purged_at.is_(None))
        .order_by(User.organisation_id, User.email)
    )
    if organisation_ids is not None:
        q = q.where(User.organisation_id.in_(organisation_ids))
    return [Recipient("user", uid, email, org) for uid, email, org in (await s.execute(q)).all()]


async def subscribers(s: AsyncSession) -> list[Recipient]:
    """Confirmed newsletter subscribers (a pending one has not said yes yet)."""
    rows = await s.scalars(
        select(NewsletterSubscription)
        .where(NewsletterSubscription.state == "subscribed")
        .order_by(NewsletterSubscription.created_at)
    )
    return [
        Recipient("subscriber", r.id, r.email, None, r.unsubscribe_token)
        for r in rows
        if r.email != ERASED
    ]


async def organisations(s: AsyncSession) -> list[tuple[str, str]]:
    """Every client organisation still with us (id, name): each gets an inbox message."""
    rows = await s.execute(
        select(Organisation.id, Organisation.name)
        .where(Organisation.purged_at.is_(None))
        .order_by(Organisation.name)
    )
    return [(str(i), str(n)) for i, n in rows.all()]
