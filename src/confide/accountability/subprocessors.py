"""The sub-processor register (art. 28(2), (4); R04): prior notice, and objections.

Adding a sub-processor is a *pending change*: it is announced at once (an inbox message for every
client organisation, in the same transaction, then an email to every client admin) and takes
effect only at ``effective_at``, by default 30 days later and never sooner than 14. Until then it
is "announced", not "in effect" (:func:`status`), and the record of processing lists it apart.
A client's staff may object (who, when, why); our admins see every objection.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from confide.accountability import inbox, mail, recipients
from confide.accountability.datamap import clean_categories, label
from confide.accountability.guards import require_client, require_reader, require_staff
from confide.accountability.mail import Letter, Outcome, Postman
from confide.accountability.models import SubProcessor, SubProcessorObjection
from confide.accountability.residency import check_subprocessor, inside_eu_uk, personal
from confide.accounts.models import Organisation, User
from confide.accounts.principal import Principal
from confide.audit import log as audit
from confide.clock import utcnow
from confide.errors import Conflict, InvalidInput, NotFound
from confide.ids import new_id
from confide.storage.engine import Database
from confide.storage.scope import Scope

#: Default notice: a month gives a client's DPO time to review the sub-processor and object.
NOTICE_DAYS = 30
#: The shortest notice we allow ourselves: two weeks still leaves a real chance to object.
MIN_NOTICE_DAYS = 14
REASON_MIN, REASON_MAX = 5, 2000


def status(sp: SubProcessor, now: datetime) -> str:
    """announced (notice running: not used yet) or in_effect."""
    return "in_effect" if now >= sp.effective_at else "announced"


def view(sp: SubProcessor, now: datetime) -> dict[str, Any]:
    return {
        "id": sp.id,
        "name": sp.name,
        "region": sp.region,
        "purpose": sp.purpose,
        "categories": list(sp.categories),
        "category_labels": sorted({label(c) for c in sp.categories}),
        "personal_data": bool(personal(list(sp.categories))),
        "inside_eu_uk": inside_eu_uk(sp.region),
        "announced_at": sp.announced_at.isoformat(),
        "effective_at": sp.effective_at.isoformat(),
        "status": status(sp, now),
    }


@dataclass(frozen=True)
class Announced:
    subprocessor: dict[str, Any]
    organisations: int
    emails_sent: int
    emails_failed: int


def _letter(to: str, org_name: str, sp: SubProcessor, link: str | None) -> Letter:
    day = f"{sp.effective_at:%d %B %Y}"
    where = f"Sign in at {link} and open Inbox" if link else "Sign in to the Confide portal"
    body = "\n".join(
        [
            f"Confide will engage a new sub-processor for the service we provide to {org_name}.",
            "",
            f"Sub-processor: {sp.name}",
            f"Region: {sp.region}",
            f"Purpose: {sp.purpose}",
            f"Data it handles: {', '.join(sp.categories)}",
            f"In effect from: {day} (UTC). Until then it is not used.",
            "",
            "Under your contract with us and article 28(2) GDPR you may object before that date.",
            f"{where}, then choose \u201cObject\u201d next to this sub-processor and give your "
            "reason. Your objection is recorded with your name and the time, and our team "
            "will contact you.",
            "",
            "\u2014 Confide",
        ]
    )
    return Letter(to, f"New sub-processor: {sp.name} (from {day})", body)


def _inbox_body(sp: SubProcessor) -> str:
    return (
        f"{sp.name} ({sp.region}) will process data for us from {sp.effective_at:%d %B %Y}. "
        f"Purpose: {sp.purpose} Data: {', '.join(sp.categories)}. You may object before that "
        "date from your record of processing."
    )


class SubProcessors:
    def __init__(self, db: Database, postman: Postman) -> None:
        self.db = db
        self.postman = postman

    async def add(
        self,
        principal: Principal | None,
        *,
        name: str,
        region: str,
        purpose: str,
        categories: list[str],
        effective_at: datetime | None = None,
        portal_url: str | None = None,
    ) -> Announced:
        actor = require_staff(principal)
        name, purpose = " ".join(name.split()), purpose.strip()
        if not 1 <= len(name) <= 120:
            raise InvalidInput("A sub-processor's name is 1 to 120 characters.")
        if not 3 <= len(purpose) <= 2000:
            raise InvalidInput("Say what the sub-processor does for us (3 to 2,000 characters).")
        cats = clean_categories(categories)
        code = check_subprocessor(name, region, cats)
        now = utcnow()
        if effective_at is None:
            effective_at = now + timedelta(days=NOTICE_DAYS)
        if effective_at.tzinfo is None:
            raise InvalidInput("Give the effective date with a time zone (UTC).")
        if effective_at < now + timedelta(days=MIN_NOTICE_DAYS):
            raise InvalidInput(
                f"Give clients at least {MIN_NOTICE_DAYS} days' notice: the effective date must "
                f"be on or after {(now + timedelta(days=MIN_NOTICE_DAYS)):%d %B %Y}."
            )
        sp = SubProcessor(
            id=new_id(),
            name=name,
            region=code,
            purpose=purpose,
            categories=cats,
            announced_at=now,
            effective_at=effective_at,
            announced_by=actor.id,
        )
        async with self.db.session(Scope.system()) as s:
            s.add(sp)
            orgs = await recipients.organisations(s)
            for org_id, _name in orgs:
                inbox.post(
                    s,
                    organisation_id=org_id,
                    kind="subprocessor",
                    ref=sp.id,
                    title=f"New sub-processor: {name}",
                    body=_inbox_body(sp),
                    at=now,
                )
            admins = await recipients.client_admins(s)
            await audit.append(
                s,
                actor,
                "config.subprocessor.add",
                subject_kind="subprocessor",
                subject_ref=sp.id,
                fields=["name", "region", "purpose", "categories", "effective_at"],
                purpose=f"{name} in {code}, in effect from {effective_at:%Y-%m-%d}",
            )
        names = dict(orgs)
        outcomes = []
        for r in admins:
            letter = _letter(r.email, names.get(r.organisation_id or "", ""), sp, portal_url)
            outcomes.append(
                Outcome("user", r.id, r.organisation_id, await self.postman.send(letter))
            )
        await mail.record(self.db, "subprocessor.announced", sp.id, outcomes)
        failed = sum(1 for o in outcomes if o.error)
        return Announced(view(sp, now), len(orgs), len(outcomes) - failed, failed)

    async def listing(self, principal: Principal | None) -> list[dict[str, Any]]:
        """Every sub-processor, newest first, with the objections the caller may see: all of
        them for our staff, their own organisation's for a client."""
        now = utcnow()
        if principal is not None:
            require_reader(principal)
        scope = principal.scope if principal is not None else Scope.system()
        async with self.db.session(scope, read_only=True) as s:
            sps = list(
                await s.scalars(
                    select(SubProcessor).order_by(SubProcessor.announced_at.desc(), SubProcessor.id)
                )
            )
            rows = (
                await s.execute(
                    select(SubProcessorObjection, Organisation.name, User.name, User.email)
                    .join(Organisation, Organisation.id == SubProcessorObjection.organisation_id)
                    .outerjoin(User, User.id == SubProcessorObjection.user_id)
                    .order_by(SubProcessorObjection.created_at)
                )
            ).all()
        by_sp: dict[str, list[dict[str, Any]]] = {}
        effective = {sp.id: sp.effective_at for sp in sps}
        for o, org_name, user_name, user_email in rows:
            by_sp.setdefault(o.subprocessor_id, []).append(
                {
                    "id": o.id,
                    "organisation_id": o.organisation_id,
                    "organisation_name": org_name,
                    "user_id": o.user_id,
                    "user_name": user_name,
                    "user_email": user_email,
                    "reason": o.reason,
                    "created_at": o.created_at.isoformat(),
                    "before_effective": o.created_at < effective[o.subprocessor_id],
                }
            )
        return [{**view(sp, now), "objections": by_sp.get(sp.id, [])} for sp in sps]

    async def object(
        self, principal: Principal, organisation_id: str, subprocessor_id: str, reason: str
    ) -> dict[str, Any]:
        """Record the organisation's objection to a sub-processor (one per organisation)."""
        if not principal.scope.allows(organisation_id):
            raise NotFound("No such organisation.")
        org = require_client(principal)
        if org != organisation_id:
            raise NotFound("No such organisation.")
        reason = reason.strip()
        if not REASON_MIN <= len(reason) <= REASON_MAX:
            raise InvalidInput(
                f"Give your reason for objecting ({REASON_MIN} to {REASON_MAX:,} characters)."
            )
        now = utcnow()
        objection_id = new_id()
        try:
            # The system scope: the organisation is the caller's own (checked above), and the
            # audit chain must see every entry to append the next one.
            async with self.db.session(Scope.system()) as s:
                sp = await s.get(SubProcessor, subprocessor_id)
                if sp is None:
                    raise NotFound("No such sub-processor.")
                existing = await s.scalar(
                    select(SubProcessorObjection.created_at).where(
                        SubProcessorObjection.subprocessor_id == sp.id,
                        SubProcessorObjection.organisation_id == org,
                    )
                )
                if existing is not None:
                    raise Conflict(
                        f"Your organisation already objected to {sp.name} on "
                        f"{existing:%d %B %Y}. Our team will be in touch."
                    )
                s.add(
                    SubProcessorObjection(
                        id=objection_id,
                        subprocessor_id=sp.id,
                        organisation_id=org,
                        user_id=principal.user_id,
                        reason=self.db.vault.seal(objection_id, org, reason),
                        created_at=now,
                    )
                )
                await s.flush()
                await audit.append(
                    s,
                    audit.Actor.of(principal),
                    "subprocessor.objection",
                    organisation_id=org,
                    subject_kind="subprocessor",
                    subject_ref=sp.id,
                    fields=["reason"],
                    purpose="objection to a sub-processor (art. 28(2))",
                )
                name, effective = sp.name, sp.effective_at
        except IntegrityError:
            # A colleague objected at the same moment: theirs is the organisation's objection.
            raise Conflict(
                "Your organisation has already objected to this sub-processor."
            ) from None
        return {
            "id": objection_id,
            "subprocessor_id": subprocessor_id,
            "subprocessor_name": name,
            "organisation_id": org,
            "user_id": principal.user_id,
            "created_at": now.isoformat(),
            "before_effective": now < effective,
        }
