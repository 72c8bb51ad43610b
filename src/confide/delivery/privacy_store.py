"""Deliveries in the privacy registry: the disclosures a subject may ask about (which client,
which destination, when), and the outbox jobs an erasure must stop."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from confide.chat.views import iso
from confide.delivery.models import Destination, OutboxJob
from confide.privacy.registry import Store, Subject, register


async def _export(s: AsyncSession, subject: Subject) -> list[dict[str, Any]]:
    rows = await s.execute(
        select(OutboxJob, Destination.name, Destination.kind, Destination.region)
        .join(Destination, Destination.id == OutboxJob.destination_id)
        .where(OutboxJob.lead_id.in_(subject.lead_ids))
        .order_by(OutboxJob.id)
    )
    return [
        {
            "lead_id": job.lead_id,
            "destination": name,
            "kind": kind,
            "region": region,
            "event": job.event,
            "state": job.state,
            "delivered_at": iso(job.done_at) if job.done_at else None,
        }
        for job, name, kind, region in rows.all()
    ]


async def _erase(s: AsyncSession, subject: Subject) -> int:
    """Stop every delivery not yet made (the rows go with their leads)."""
    result = await s.execute(
        update(OutboxJob)
        .where(OutboxJob.lead_id.in_(subject.lead_ids), OutboxJob.state.in_(("pending", "running")))
        .values(state="canceled", last_error="erasure request")
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


register(Store("outbox", ("outbox",), _export, _erase, order=5))
