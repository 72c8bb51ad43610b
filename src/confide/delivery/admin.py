"""Destinations and the dead-letter queue, as the console and the CLI manage them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, update

from confide.accounts.models import Organisation, Role
from confide.accounts.principal import Principal
from confide.audit import log as audit
from confide.chat.views import iso
from confide.clock import utcnow
from confide.delivery.models import Destination, OutboxJob
from confide.delivery.snapshot import PERSONAL_DATA_REGIONS
from confide.errors import Forbidden, InvalidInput, InvalidState, NotFound
from confide.ids import new_id, new_secret
from confide.leads import fields
from confide.leads.models import Lead
from confide.sites.models import Site
from confide.storage.engine import Database
from confide.storage.scope import Scope

KINDS = ("email", "webhook")
#: Region codes a destination may declare; anything else is refused as a typo.
REGIONS = ("UK", "EU", "EEA", "US", "CA", "AU", "OTHER")
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
#: What the deliveries list shows: leads sent to clients and the notices that follow them.
_NOTICE_EVENTS = ("lead.erased", "transfer.erased")
_LISTED_EVENTS = ("lead.created", "lead.corrected", *_NOTICE_EVENTS)

RESIDENCY_NOTE = (
    "This destination is outside the EU/UK: its leads arrive without personal data (no name, "
    "contact details or conversation), only the enquiry, the vehicle and the consent reference."
)


@dataclass(frozen=True)
class NewDestination:
    destination: dict[str, Any]
    #: Shown once: the webhook signing key.
    secret: str | None


def destination_dict(d: Destination) -> dict[str, Any]:
    personal = d.region.upper() in PERSONAL_DATA_REGIONS
    return {
        "id": d.id,
        "organisation_id": d.organisation_id,
        "site_id": d.site_id,
        "name": d.name,
        "kind": d.kind,
        "target": d.target,
        "region": d.region,
        "enabled": d.enabled,
        "personal_data": personal,
        "note": None if personal else RESIDENCY_NOTE,
        "created_at": iso(d.created_at),
    }


def check_target(kind: str, target: str) -> str:
    target = target.strip()
    if kind == "email":
        clean = fields.email(target)
        assert clean is not None
        return clean
    parts = urlsplit(target)
    if parts.scheme == "https" and parts.hostname:
        return target
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return target  # a receiver on this machine (development, tests)
    raise InvalidInput("A webhook URL must be https:// (plain http only on localhost).")


class DeliveryAdmin:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_destination(
        self,
        scope: Scope,
        *,
        organisation_id: str,
        kind: str,
        target: str,
        region: str,
        name: str | None = None,
        site_id: str | None = None,
        actor: audit.Actor | None = None,
    ) -> NewDestination:
        if kind not in KINDS:
            raise InvalidInput("A destination is an email address or a webhook.")
        region = region.strip().upper()
        if region not in REGIONS:
            raise InvalidInput(f"Region must be one of {', '.join(REGIONS)}.")
        clean = check_target(kind, target)
        secret = new_secret() if kind == "webhook" else None
        async with self.db.session(scope) as s:
            if await s.get(Organisation, organisation_id) is None:
                raise NotFound("No such organisation.")
            if site_id is not None:
                site = await s.scalar(select(Site).where(Site.id == site_id))
                if site is None or site.organisation_id != organisation_id:
                    raise NotFound("No such site in that organisation.")
            dest = Destination(
                id=new_id(),
                organisation_id=organisation_id,
                site_id=site_id,
                name=(name or clean)[:120],
                kind=kind,
                target=clean,
                secret=secret[:64] if secret else None,
                region=region,
                enabled=True,
                created_at=utcnow(),
            )
            if not scope.allows(organisation_id):
                raise NotFound("No such organisation.")
            s.add(dest)
            await s.flush()
            await audit.append(
                s,
                actor or audit.SYSTEM,
                "config.destination.add",
                organisation_id=organisation_id,
                subject_kind="destination",
                subject_ref=dest.id,
                fields=["kind", "target", "region"],
                purpose=f"{kind} destination in region {region}",
            )
            return NewDestination(destination_dict(dest), dest.secret)

    async def list_destinations(self, scope: Scope) -> list[dict[str, Any]]:
        async with self.db.session(scope, read_only=True) as s:
            rows = await s.scalars(select(Destination).order_by(Destination.created_at))
            return [destination_dict(d) for d in rows]

    async def set_enabled(self, scope: Scope, destination_id: str, enabled: bool) -> dict[str, Any]:
        async with self.db.session(scope) as s:
            dest = await s.scalar(select(Destination).where(Destination.id == destination_id))
            if dest is None:
                raise NotFound("No such destination.")
            dest.enabled = enabled
            await audit.append(
                s,
                audit.SYSTEM,
                "config.destination." + ("enable" if enabled else "disable"),
                organisation_id=dest.organisation_id,
                subject_kind="destination",
                subject_ref=dest.id,
            )
            await s.flush()
            return destination_dict(dest)

    async def jobs(self, principal: Principal, state: str | None = None) -> list[dict[str, Any]]:
        """Deliveries (dead letters first when asked for ``state='dead'``), erasure notices
        included: their lead is gone by then, and an onward recipient has no destination row."""
        site = func.coalesce(Lead.site_id, Destination.site_id)
        q = (
            select(OutboxJob, Destination.name, Destination.kind, site)
            .outerjoin(Destination, Destination.id == OutboxJob.destination_id)
            .outerjoin(Lead, Lead.id == OutboxJob.lead_id)
            .where(OutboxJob.event.in_(_LISTED_EVENTS))
            .order_by(OutboxJob.updated_at.desc())
            .limit(200)
        )
        if state is not None:
            q = q.where(OutboxJob.state == state)
        async with self.db.session(principal.scope, read_only=True) as s:
            rows = (await s.execute(q)).all()
        return [
            {
                "id": job.id,
                "lead_id": job.lead_id or job.subject_ref,
                "site_id": site_id,
                "destination": {"name": name, "kind": kind}
                if name is not None
                else {"name": "Onward recipient (erasure notice)", "kind": "email"},
                "event": job.event,
                "state": job.state,
                "attempts": job.attempts,
                "last_error": job.last_error,
                "updated_at": iso(job.updated_at),
            }
            for job, name, kind, site_id in rows
            if principal.scope.unrestricted
            or (site_id is not None and site_id in principal.site_ids)
            or principal.role is Role.CLIENT
        ]

    async def retry(self, principal: Principal, job_id: int) -> dict[str, Any]:
        """Put a dead-lettered delivery back in the queue (the console's Retry action)."""
        now = utcnow()
        async with self.db.session(principal.scope) as s:
            job = await s.scalar(select(OutboxJob).where(OutboxJob.id == job_id))
            lead = await s.scalar(select(Lead).where(Lead.id == job.lead_id)) if job else None
            # An erasure notice outlives its lead: its site is its destination's, if any.
            notice = job is not None and job.event in _NOTICE_EVENTS and lead is None
            site_id = lead.site_id if lead is not None else None
            if notice and job is not None and job.destination_id is not None:
                dest = await s.get(Destination, job.destination_id)
                site_id = dest.site_id if dest is not None else None
            visible = (lead is not None or notice) and (
                principal.scope.unrestricted or site_id in principal.site_ids
            )
            if job is None or not visible:
                raise NotFound("No such delivery.")
            if principal.role is Role.CLIENT:
                raise Forbidden("Deliveries are retried by the Confide team.")
            if job.state != "dead":
                raise InvalidState("Only a failed (dead-lettered) delivery can be retried.")
            if not notice and (
                lead is None or lead.delivery_state == "withdrawn" or lead.consent_id is None
            ):
                raise InvalidState("The visitor's consent no longer allows this delivery.")
            job.state, job.attempts, job.next_attempt_at = "pending", 0, now
            job.updated_at, job.last_error = now, None
            if lead is not None:
                await s.execute(
                    update(Lead).where(Lead.id == lead.id).values(delivery_state="queued")
                )
            await s.flush()
            return {"id": job.id, "state": job.state}
