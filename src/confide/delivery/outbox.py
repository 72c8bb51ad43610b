"""Enqueue deliveries inside the caller's transaction (the transactional outbox).

Why inside the caller's transaction: the lead (or the consent that releases it) and its delivery
jobs commit together or not at all, so no crash can leave a consented lead without a delivery,
nor a delivery without its lead.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from confide.delivery.models import Destination, OutboxJob
from confide.leads.models import Lead

#: Jobs in these states may still run; withdrawal or erasure cancels them.
LIVE_STATES = ("pending", "running")
#: Jobs that stopped without delivering: queued again when the lead is released again.
ENDED_STATES = ("canceled", "dead")


def pending_job(
    *,
    organisation_id: str,
    event: str,
    key: str,
    now: datetime,
    lead_id: str | None = None,
    destination_id: str | None = None,
    subject_ref: str | None = None,
    recipient: str | None = None,
) -> OutboxJob:
    """A job due now, for the caller to add to its transaction. ``key`` is the idempotency key
    receivers de-duplicate on."""
    return OutboxJob(
        organisation_id=organisation_id,
        event=event,
        lead_id=lead_id,
        destination_id=destination_id,
        subject_ref=subject_ref,
        recipient=recipient,
        idempotency_key=key,
        state="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )


async def destinations_for(
    s: AsyncSession, organisation_id: str, site_id: str
) -> list[Destination]:
    rows = await s.scalars(
        select(Destination)
        .where(
            Destination.organisation_id == organisation_id,
            Destination.enabled.is_(True),
            or_(Destination.site_id.is_(None), Destination.site_id == site_id),
        )
        .order_by(Destination.created_at)
    )
    return list(rows)


async def enqueue_lead(s: AsyncSession, lead: Lead, event: str, now: datetime) -> int:
    """One job per destination of the lead's site; returns how many are queued.

    The idempotency key names the lead, the destination, the event and the lead's revision: a
    retry of the same job reuses it (receivers de-duplicate), a correction gets a new one.

    A lead released again (consent withdrawn and then given again, a failed lead sent again) has
    its jobs already: a canceled or dead one is queued again under its key (if an earlier try did
    land, the receiver drops the repeat), a done one is not sent twice.
    """
    count = 0
    for dest in await destinations_for(s, lead.organisation_id, lead.site_id):
        key = f"{lead.id}.{dest.id}.{event}.{lead.revision}"
        job = await s.scalar(select(OutboxJob).where(OutboxJob.idempotency_key == key))
        if job is None:
            s.add(
                pending_job(
                    organisation_id=lead.organisation_id,
                    event=event,
                    key=key,
                    now=now,
                    lead_id=lead.id,
                    destination_id=dest.id,
                )
            )
        elif job.state in ENDED_STATES:
            job.state, job.attempts, job.next_attempt_at = "pending", 0, now
            job.lease_until, job.last_error, job.updated_at = None, None, now
        elif job.state not in LIVE_STATES:
            continue  # done: delivered already
        count += 1
    return count


async def cancel_for_leads(s: AsyncSession, lead_ids: list[str], reason: str, now: datetime) -> int:
    """Stop every delivery of these leads not yet made (consent withdrawn, minor, erasure)."""
    if not lead_ids:
        return 0
    result = await s.execute(
        update(OutboxJob)
        .where(OutboxJob.lead_id.in_(lead_ids), OutboxJob.state.in_(LIVE_STATES))
        .values(state="canceled", last_error=reason[:300], updated_at=now, lease_until=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
