"""The breach register (art. 33(5)) and notices to each affected controller (art. 33(2)-(3)).

Our staff record an incident: the facts, its nature, the categories and approximate numbers of
people and records, likely consequences, measures taken, our contact point, when it was
discovered and which client organisations it affects. *Notify* then tells every affected
organisation not yet told: an email with the art. 33(3) fields to each of its client admins and
the same notice in its portal inbox, and records ``notified_at``. The time to notify
(``notified_at - discovered_at``) is kept per organisation and compared with our contractual
target, :data:`NOTIFY_TARGET`.

Emails go before the organisation is marked notified: a crash in between sends the notice again
on the next attempt (at least once), never zero times.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select

from confide.accountability import inbox, mail, recipients
from confide.accountability.datamap import clean_categories, label
from confide.accountability.guards import require_staff
from confide.accountability.mail import Letter, Outcome, Postman
from confide.accountability.models import Breach, BreachOrganisation
from confide.accounts.models import Organisation, Role
from confide.accounts.principal import Principal
from confide.audit import log as audit
from confide.clock import utcnow
from confide.errors import InvalidInput, NotFound
from confide.ids import new_id
from confide.leads import fields
from confide.storage.engine import Database
from confide.storage.scope import Scope

#: Our internal target for telling each affected controller (R38): 24 hours from discovery,
#: so that the controller keeps most of its own 72 hours (art. 33(1)) to decide and report.
NOTIFY_TARGET = timedelta(hours=24)
TEXT_MAX = 5000


def duration(delta: timedelta) -> str:
    """``1 day 2 h 05 min``, ``3 h 20 min``, ``12 min``."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{days} day{'s' if days != 1 else ''}"] if days else []
    if hours or days:
        parts.append(f"{hours} h")
    parts.append(f"{mins:02d} min" if parts else f"{mins} min")
    return " ".join(parts)


def _text(value: str, what: str) -> str:
    value = value.strip()
    if not 3 <= len(value) <= TEXT_MAX:
        raise InvalidInput(f"Describe {what} (3 to {TEXT_MAX:,} characters).")
    return value


def notice_lines(b: Breach, org_name: str, notified_at: datetime) -> list[str]:
    """The art. 33(3) notice, in the order of the article."""
    cats = "; ".join(f"{c} ({label(c)})" if label(c) != c else c for c in b.categories)
    return [
        f"Confide, your processor, is notifying {org_name} of a personal data breach "
        "(article 33(2) GDPR) that affects data we process for you.",
        "You are the controller: you decide whether to notify the supervisory authority (within "
        "72 hours of becoming aware, article 33(1)) and the people concerned (article 34).",
        "",
        f"Reference: {b.id}",
        f"Discovered: {b.discovered_at:%d %B %Y %H:%M} UTC",
        f"Notified to you: {notified_at:%d %B %Y %H:%M} UTC",
        "",
        f"(a) Nature of the breach: {b.nature}",
        f"    Categories of personal data concerned: {cats}",
        f"    Approximate number of data subjects concerned: {b.subjects_approx:,}",
        f"    Approximate number of personal data records concerned: {b.records_approx:,}",
        f"(b) Contact point for more information: {b.contact_name} <{b.contact_email}>",
        f"(c) Likely consequences: {b.consequences}",
        f"(d) Measures taken or proposed, including to mitigate possible adverse effects: "
        f"{b.measures}",
        "",
        "We will send further information as soon as we have it (article 33(4)).",
        "",
        "\u2014 Confide",
    ]


class Breaches:
    def __init__(self, db: Database, postman: Postman) -> None:
        self.db = db
        self.postman = postman

    async def record(
        self,
        principal: Principal | None,
        *,
        nature: str,
        categories: list[str],
        subjects_approx: int,
        records_approx: int,
        consequences: str,
        measures: str,
        contact_name: str,
        contact_email: str,
        discovered_at: datetime,
        organisation_ids: list[str],
    ) -> dict[str, Any]:
        actor = require_staff(principal)
        now = utcnow()
        if discovered_at.tzinfo is None:
            raise InvalidInput("Give the discovery time with a time zone (UTC).")
        if discovered_at > now:
            raise InvalidInput("The discovery time is in the future.")
        if subjects_approx < 0 or records_approx < 0:
            raise InvalidInput("Approximate numbers are 0 or more.")
        name = " ".join(contact_name.split())
        if not 1 <= len(name) <= 200:
            raise InvalidInput("Name the contact point (1 to 200 characters).")
        email = fields.email(contact_email)
        if email is None:
            raise InvalidInput("Give the contact point's email address.")
        orgs = list(dict.fromkeys(o.strip() for o in organisation_ids if o.strip()))
        if not orgs:
            raise InvalidInput("Name at least one affected organisation.")
        breach = Breach(
            id=new_id(),
            nature=_text(nature, "the nature of the breach"),
            categories=clean_categories(categories),
            subjects_approx=subjects_approx,
            records_approx=records_approx,
            consequences=_text(consequences, "its likely consequences"),
            measures=_text(measures, "the measures taken or proposed"),
            contact_name=name,
            contact_email=email,
            discovered_at=discovered_at,
            recorded_at=now,
            recorded_by=actor.id,
        )
        async with self.db.session(Scope.system()) as s:
            known = set(await s.scalars(select(Organisation.id).where(Organisation.id.in_(orgs))))
            missing = [o for o in orgs if o not in known]
            if missing:
                raise NotFound(f"No such organisation: {', '.join(missing)}.")
            s.add(breach)
            await s.flush()
            s.add_all(BreachOrganisation(breach_id=breach.id, organisation_id=o) for o in orgs)
            await audit.append(
                s,
                actor,
                "breach.recorded",
                subject_kind="breach",
                subject_ref=breach.id,
                fields=["nature", "categories", "numbers", "consequences", "measures"],
                purpose=f"{len(orgs)} organisation(s) affected",
            )
        return await self.get(principal, breach.id)

    async def notify(
        self, principal: Principal | None, breach_id: str, *, portal_url: str | None = None
    ) -> dict[str, Any]:
        """Tell every affected organisation not told yet; returns the breach with the times."""
        await self._visible(principal, breach_id)
        actor = require_staff(principal)
        async with self.db.session(Scope.system(), read_only=True) as s:
            breach = await s.get(Breach, breach_id)
            assert breach is not None
            # Not told yet, or told in the portal only because every email failed: those
            # get the emails again (the inbox notice is not posted twice).
            pending = (
                await s.execute(
                    select(
                        BreachOrganisation.organisation_id,
                        Organisation.name,
                        BreachOrganisation.notified_at,
                    )
                    .join(Organisation, Organisation.id == BreachOrganisation.organisation_id)
                    .where(
                        BreachOrganisation.breach_id == breach_id,
                        or_(
                            BreachOrganisation.notified_at.is_(None),
                            BreachOrganisation.emails_sent == 0,
                        ),
                    )
                    .order_by(Organisation.name)
                )
            ).all()
            admins = await recipients.client_admins(s, [o for o, _, _ in pending])
        for org_id, org_name, told_at in pending:
            if told_at is not None and not any(r.organisation_id == org_id for r in admins):
                continue  # told in the portal; nobody to email
            if told_at is not None:
                await self._email_again(actor, breach, org_id, org_name, told_at, admins)
                continue
            at = utcnow()
            body = "\n".join(notice_lines(breach, org_name, at))
            if portal_url:
                body += f"\n\nThis notice is also in your portal inbox: {portal_url}"
            subject = f"Personal data breach notice for {org_name} (ref. {breach.id})"
            outcomes = [
                Outcome(
                    "user", r.id, org_id, await self.postman.send(Letter(r.email, subject, body))
                )
                for r in admins
                if r.organisation_id == org_id
            ]
            sent = sum(1 for o in outcomes if o.error is None)
            notified = utcnow()
            async with self.db.session(Scope.system()) as s:
                row = await s.scalar(
                    select(BreachOrganisation).where(
                        BreachOrganisation.breach_id == breach_id,
                        BreachOrganisation.organisation_id == org_id,
                    )
                )
                assert row is not None
                if row.notified_at is not None:
                    continue  # another notify call finished this organisation first
                row.notified_at, row.emails_sent = notified, sent
                inbox.post(
                    s,
                    organisation_id=org_id,
                    kind="breach",
                    ref=breach.id,
                    title="Personal data breach notice",
                    body="\n".join(notice_lines(breach, org_name, notified)),
                    at=notified,
                )
                await audit.append(
                    s,
                    actor,
                    "breach.notified",
                    organisation_id=org_id,
                    subject_kind="breach",
                    subject_ref=breach.id,
                    purpose=(
                        f"{sent} of {len(outcomes)} email(s) sent; "
                        f"{duration(notified - breach.discovered_at)} after discovery"
                    ),
                )
            await mail.record(self.db, "breach.notified", breach.id, outcomes)
        return await self.get(principal, breach_id)

    async def _email_again(
        self,
        actor: audit.Actor,
        breach: Breach,
        org_id: str,
        org_name: str,
        told_at: datetime,
        admins: list[Any],
    ) -> None:
        """The emails of a notice whose every email failed before: its portal notice stands."""
        body = "\n".join(notice_lines(breach, org_name, told_at))
        subject = f"Personal data breach notice for {org_name} (ref. {breach.id})"
        outcomes = [
            Outcome("user", r.id, org_id, await self.postman.send(Letter(r.email, subject, body)))
            for r in admins
            if r.organisation_id == org_id
        ]
        sent = sum(1 for o in outcomes if o.error is None)
        async with self.db.session(Scope.system()) as s:
            row = await s.scalar(
                select(BreachOrganisation).where(
                    BreachOrganisation.breach_id == breach.id,
                    BreachOrganisation.organisation_id == org_id,
                )
            )
            assert row is not None
            row.emails_sent = sent
            await audit.append(
                s,
                actor,
                "breach.notice_emailed",
                organisation_id=org_id,
                subject_kind="breach",
                subject_ref=breach.id,
                purpose=f"{sent} of {len(outcomes)} email(s) sent (earlier emails had failed)",
            )
        await mail.record(self.db, "breach.notified", breach.id, outcomes)

    async def get(self, principal: Principal | None, breach_id: str) -> dict[str, Any]:
        await self._visible(principal, breach_id)
        return (await self._views(principal, breach_id))[0]

    async def listing(self, principal: Principal | None) -> list[dict[str, Any]]:
        """Our staff: the whole register. A client: the breaches it was notified of."""
        return await self._views(principal, None)

    async def _visible(self, principal: Principal | None, breach_id: str) -> None:
        """A breach exists for you when you are our staff, or your organisation was told."""
        unrestricted = principal is None or principal.role is Role.ADMIN
        scope = Scope.system() if principal is None else principal.scope
        async with self.db.session(scope, read_only=True) as s:
            if unrestricted:
                found = await s.scalar(select(Breach.id).where(Breach.id == breach_id))
            else:
                found = await s.scalar(
                    select(BreachOrganisation.id).where(
                        BreachOrganisation.breach_id == breach_id,
                        BreachOrganisation.notified_at.is_not(None),
                    )
                )
        if found is None:
            raise NotFound("No such breach.")

    async def _views(
        self, principal: Principal | None, breach_id: str | None
    ) -> list[dict[str, Any]]:
        staff = principal is None or principal.role is Role.ADMIN
        scope = Scope.system() if principal is None else principal.scope
        q = (
            select(BreachOrganisation, Organisation.name)
            .join(Organisation, Organisation.id == BreachOrganisation.organisation_id)
            .order_by(Organisation.name)
        )
        if breach_id is not None:
            q = q.where(BreachOrganisation.breach_id == breach_id)
        if not staff:
            q = q.where(BreachOrganisation.notified_at.is_not(None))
        async with self.db.session(scope, read_only=True) as s:
            affected = (await s.execute(q)).all()
            ids = {row.breach_id for row, _ in affected}
            if staff and breach_id is None:
                ids |= set(await s.scalars(select(Breach.id)))
            breaches = list(
                await s.scalars(
                    select(Breach).where(Breach.id.in_(ids)).order_by(Breach.discovered_at.desc())
                )
            )
        out = []
        for b in breaches:
            orgs = []
            for row, name in affected:
                if row.breach_id != b.id:
                    continue
                delay = row.notified_at - b.discovered_at if row.notified_at else None
                orgs.append(
                    {
                        "organisation_id": row.organisation_id,
                        "organisation_name": name,
                        "notified_at": row.notified_at.isoformat() if row.notified_at else None,
                        "emails_sent": row.emails_sent,
                        "time_to_notify_seconds": int(delay.total_seconds()) if delay else None,
                        "time_to_notify": duration(delay) if delay is not None else None,
                        "within_target": delay <= NOTIFY_TARGET if delay is not None else None,
                    }
                )
            out.append(
                {
                    "id": b.id,
                    "nature": b.nature,
                    "categories": list(b.categories),
                    "category_labels": sorted({label(c) for c in b.categories}),
                    "subjects_approx": b.subjects_approx,
                    "records_approx": b.records_approx,
                    "consequences": b.consequences,
                    "measures": b.measures,
                    "contact": {"name": b.contact_name, "email": b.contact_email},
                    "discovered_at": b.discovered_at.isoformat(),
                    "recorded_at": b.recorded_at.isoformat(),
                    "target_hours": int(NOTIFY_TARGET.total_seconds() // 3600),
                    "organisations": orgs,
                    "all_notified": bool(orgs) and all(o["notified_at"] for o in orgs),
                }
            )
        return out
