"""Legal holds (policy 5.4, R41): placed and released by our staff, with owner, reason, review."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from confide.accounts.models import Organisation
from confide.audit import log as audit
from confide.chat.views import iso
from confide.clock import utcnow
from confide.errors import InvalidInput, NotFound
from confide.ids import new_id
from confide.leads.models import Lead, Person
from confide.privacy.models import LegalHold
from confide.storage.engine import Database
from confide.storage.scope import Scope

KINDS = ("person", "lead", "organisation")


async def place(
    db: Database,
    *,
    organisation_id: str,
    kind: str,
    target_id: str,
    owner: str,
    reason: str,
    review_days: int = 90,
) -> LegalHold:
    if kind not in KINDS:
        raise InvalidInput(f"A hold is on a {', '.join(KINDS)}.")
    if len(reason.strip()) < 5 or not owner.strip():
        raise InvalidInput("A hold needs an owner and a reason.")
    if not 1 <= review_days <= 730:
        raise InvalidInput("Review within 1 to 730 days.")
    now = utcnow()
    async with db.session(Scope.system()) as s:
        await _check_target(s, organisation_id, kind, target_id)
        hold = LegalHold(
            id=new_id(),
            organisation_id=organisation_id,
            target_kind=kind,
            target_id=organisation_id if kind == "organisation" else target_id,
            owner=owner.strip()[:200],
            reason=reason.strip(),
            review_at=now + timedelta(days=review_days),
            created_at=now,
        )
        s.add(hold)
        await audit.append(
            s,
            audit.SYSTEM,
            "legal_hold.placed",
            organisation_id=organisation_id,
            subject_kind=kind,
            subject_ref=hold.target_id,
            purpose=hold.reason[:500],
        )
        await s.flush()
        s.expunge(hold)
        return hold


async def _check_target(s: AsyncSession, organisation_id: str, kind: str, target_id: str) -> None:
    """A hold must protect something: the organisation exists, and a person or lead hold names
    one of that organisation's (a hold on nothing, or under the wrong organisation, would be
    listed as active while the purge took the data it meant to keep)."""
    if await s.get(Organisation, organisation_id) is None:
        raise NotFound("No such organisation.")
    if kind == "organisation":
        return
    if not target_id.strip():
        raise InvalidInput(f"Name the {kind} to hold (--target).")
    model: type[Person] | type[Lead] = Person if kind == "person" else Lead
    owner = await s.scalar(select(model.organisation_id).where(model.id == target_id.strip()))
    if owner != organisation_id:
        raise NotFound(f"No such {kind} in this organisation.")


async def release(db: Database, hold_id: str) -> None:
    async with db.session(Scope.system()) as s:
        hold = await s.get(LegalHold, hold_id)
        if hold is None or hold.released_at is not None:
            raise NotFound("No such active hold.")
        hold.released_at = utcnow()
        await audit.append(
            s,
            audit.SYSTEM,
            "legal_hold.released",
            organisation_id=hold.organisation_id,
            subject_kind=hold.target_kind,
            subject_ref=hold.target_id,
        )


async def active(db: Database, now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or utcnow()
    async with db.session(Scope.system(), read_only=True) as s:
        rows = await s.scalars(select(LegalHold).where(LegalHold.released_at.is_(None)))
        return [
            {
                "id": h.id,
                "organisation_id": h.organisation_id,
                "kind": h.target_kind,
                "target": h.target_id,
                "owner": h.owner,
                "reason": h.reason,
                "review_at": iso(h.review_at),
                "review_due": h.review_at <= now,
            }
            for h in rows
        ]
