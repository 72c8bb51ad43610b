"""Versions of the platform's privacy policy (policy 6, R57): immutable, announced when published.

A version is inserted once and never changed: the database refuses UPDATE and DELETE on
``policy_versions`` (triggers, migration 0007), whatever the code does. Publishing one puts a
message in every client organisation's inbox (same transaction) and then emails every client
admin (a notice, policy 6.3) and every confirmed newsletter subscriber (with a one-click
unsubscribe link).

Publishing does **not** touch ``Site.policy_version``: that is the version of the *client's*
policy which consent evidence names (``leads/service.py``), and evidence already given must keep
naming the text the visitor was shown. The newest platform version is :meth:`Policies.latest`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from confide.accountability import inbox, mail, recipients
from confide.accountability.guards import require_staff
from confide.accountability.mail import Letter, Outcome, Postman
from confide.accountability.models import PolicyVersion
from confide.accountability.newsletter import unsubscribe_url
from confide.accounts.principal import Principal
from confide.audit import log as audit
from confide.clock import utcnow
from confide.errors import Conflict, InvalidInput, NotFound
from confide.storage.engine import Database
from confide.storage.scope import Scope

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
#: A policy is a document, not a novel: 200,000 characters is about 30,000 words.
TEXT_MAX = 200_000
SUMMARY_MAX = 1000


def view(p: PolicyVersion, *, text: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": p.id,
        "version": p.version,
        "title": p.title,
        "text_sha256": p.text_sha256,
        "summary": p.summary,
        "published_at": p.published_at.isoformat(),
    }
    if text:
        out["text"] = p.text
    return out


@dataclass(frozen=True)
class Published:
    policy: dict[str, Any]
    organisations: int
    emails_sent: int
    emails_failed: int
    subscribers: int


class Policies:
    def __init__(self, db: Database, postman: Postman) -> None:
        self.db = db
        self.postman = postman

    async def publish(
        self,
        principal: Principal | None,
        *,
        version: str,
        text: str,
        base_url: str,
        title: str | None = None,
        summary: str | None = None,
    ) -> Published:
        """Publish ``version``; ``base_url`` is this server's public origin (email links)."""
        actor = require_staff(principal)
        version = version.strip()
        if not _VERSION.match(version):
            raise InvalidInput(
                "A version is 1 to 40 letters, digits, dots, dashes or underscores (e.g. v2)."
            )
        text = text.strip()
        if not 20 <= len(text) <= TEXT_MAX:
            raise InvalidInput(f"The policy text is 20 to {TEXT_MAX:,} characters.")
        if not base_url.startswith(("https://", "http://")):
            raise InvalidInput("Emails link back to this server: give its public URL.")
        title = " ".join((title or f"Privacy policy {version}").split())[:200]
        summary = " ".join((summary or "").split()) or None
        if summary is not None and len(summary) > SUMMARY_MAX:
            raise InvalidInput(f"Say what changed in at most {SUMMARY_MAX} characters.")
        now = utcnow()
        policy = PolicyVersion(
            version=version,
            title=title,
            text=text,
            text_sha256=hashlib.sha256(text.encode()).hexdigest(),
            summary=summary,
            published_at=now,
            published_by=actor.id,
        )
        message = (
            f"We have published version {version} of our privacy policy, in effect from "
            f"{now:%d %B %Y}."
        )
        if summary:
            message += f" What changed: {summary}"
        try:
            async with self.db.session(Scope.system()) as s:
                if await s.scalar(select(PolicyVersion.id).where(PolicyVersion.version == version)):
                    raise Conflict(
                        f"Version {version} is already published; versions never change."
                    )
                s.add(policy)
                await s.flush()
                orgs = await recipients.organisations(s)
                for org_id, _name in orgs:
                    inbox.post(
                        s,
                        organisation_id=org_id,
                        kind="policy",
                        ref=version,
                        title=f"Privacy policy {version} published",
                        body=message,
                        at=now,
                    )
                admins = await recipients.client_admins(s)
                subscribers = await recipients.subscribers(s)
                await audit.append(
                    s,
                    actor,
                    "config.policy.publish",
                    subject_kind="policy",
                    subject_ref=version,
                    fields=["text"],
                    purpose=f"sha256 {policy.text_sha256[:16]}",
                )
        except IntegrityError:
            raise Conflict(f"Version {version} is already published.") from None
        base = base_url.rstrip("/")
        subject = f"Our privacy policy has changed ({version})"
        body = "\n".join(
            [
                message,
                "",
                f"Read it in full: {base}/policy/{version}",
                "",
                "\u2014 Confide",
            ]
        )
        outcomes = [
            Outcome(
                "user",
                r.id,
                r.organisation_id,
                await self.postman.send(Letter(r.email, subject, body)),
            )
            for r in admins
        ]
        for r in subscribers:
            assert r.unsubscribe_token is not None
            link = unsubscribe_url(base, r.unsubscribe_token)
            letter = Letter(
                r.email,
                subject,
                body + f"\n\nYou receive this because you subscribed. Unsubscribe: {link}",
                unsubscribe_url=link,
            )
            outcomes.append(Outcome("subscriber", r.id, None, await self.postman.send(letter)))
        await mail.record(self.db, "policy.published", version, outcomes)
        failed = sum(1 for o in outcomes if o.error)
        return Published(view(policy), len(orgs), len(outcomes) - failed, failed, len(subscribers))

    async def latest(self) -> dict[str, Any]:
        async with self.db.session(Scope.system(), read_only=True) as s:
            newest = await s.scalar(
                select(PolicyVersion)
                .order_by(PolicyVersion.published_at.desc(), PolicyVersion.id.desc())
                .limit(1)
            )
        if newest is None:
            raise NotFound("No policy version has been published yet.")
        return view(newest)

    async def get(self, version: str) -> dict[str, Any]:
        async with self.db.session(Scope.system(), read_only=True) as s:
            found = await s.scalar(select(PolicyVersion).where(PolicyVersion.version == version))
        if found is None:
            raise NotFound("There is no policy version with that name.")
        return view(found)

    async def versions(self) -> list[dict[str, Any]]:
        async with self.db.session(Scope.system(), read_only=True) as s:
            rows = await s.scalars(
                select(PolicyVersion).order_by(
                    PolicyVersion.published_at.desc(), PolicyVersion.id.desc()
                )
            )
            return [view(p, text=False) for p in rows]
