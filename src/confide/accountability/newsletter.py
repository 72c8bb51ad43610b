"""Notification and newsletter subscriptions (policy 2.6, R58): double opt-in, one-click out.

Kept apart from client accounts: a subscription is its own record, found by a blind index of the
address and never joined to ``users``. Lifecycle::

    (subscribe) → pending ──confirmation link──→ subscribed ──unsubscribe──→ unsubscribed
                     └───────────────unsubscribe (cancel)────────────────────────↗

- **Double opt-in**: subscribing stores the address as *pending* and emails a confirmation link;
  nothing else is ever sent until that link is followed (and its page's button pressed: a mail
  scanner that fetches links cannot subscribe anyone).
- **One-click unsubscribe without a login**: every email to a subscriber carries
  ``List-Unsubscribe`` (an https link with the subscription's token) and
  ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058). A POST to the link
  unsubscribes at once; a GET shows a page with the button.
- **Unsubscribing forgets the address**: its key is destroyed and the index cleared; the row
  keeps only its dates, as evidence of what the person asked.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from confide.accountability import mail, recipients
from confide.accountability.guards import require_staff
from confide.accountability.mail import Letter, Outcome, Postman
from confide.accountability.models import NewsletterSubscription
from confide.accounts.principal import Principal
from confide.audit import log as audit
from confide.clock import utcnow
from confide.crypto.vault import ERASED
from confide.errors import InvalidInput, InvalidState, NotFound
from confide.ids import new_id, new_secret, secret_hash
from confide.leads import fields
from confide.storage.engine import Database
from confide.storage.scope import Scope

#: A confirmation link works for a week: long enough for a holiday inbox, short enough that an
#: old, forgotten email cannot start a subscription months later.
CONFIRM_DAYS = 7
#: The key-store keyring that seals subscribers' addresses (no client organisation owns them).
KEYRING = "platform.newsletter"
TOKEN_MAX = 100


class State(enum.StrEnum):
    PENDING = "pending"
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"


def confirm_url(base: str, token: str) -> str:
    return f"{base.rstrip('/')}/newsletter/confirm?token={token}"


def unsubscribe_url(base: str, token: str) -> str:
    return f"{base.rstrip('/')}/newsletter/unsubscribe?token={token}"


def masked(email: str) -> str:
    """``s•••@example.org``: enough for a person to recognise their address on a page."""
    if email == ERASED or "@" not in email:
        return ""
    local, _, domain = email.partition("@")
    return f"{local[:1]}\u2022\u2022\u2022@{domain}"


@dataclass(frozen=True)
class Subscription:
    id: str
    state: str
    email: str  # masked
    created_at: datetime
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None

    @classmethod
    def of(cls, row: NewsletterSubscription) -> Subscription:
        return cls(
            row.id,
            row.state,
            masked(row.email),
            row.created_at,
            row.confirmed_at,
            row.unsubscribed_at,
        )


def _token(token: str) -> str:
    token = token.strip()
    if not token or len(token) > TOKEN_MAX:
        raise NotFound("This link is not valid. Use the link in your most recent email.")
    return token


class Newsletter:
    def __init__(self, db: Database, postman: Postman) -> None:
        self.db = db
        self.postman = postman

    def _index(self, email: str) -> str:
        index = self.db.vault.blind_index("newsletter.email", email.lower())
        assert index is not None
        return index

    async def subscribe(self, email: str, *, base_url: str) -> None:
        """Start (or restart) a double opt-in. The answer is the same whether or not the address
        was already subscribed, so the form tells nobody who is on the list."""
        clean = fields.email(email)
        if clean is None:
            raise InvalidInput("Enter your email address.")
        token = new_secret()
        now = utcnow()
        index = self._index(clean)
        for _attempt in range(2):
            try:
                row = await self._pending(clean, index, token, now)
                break
            except IntegrityError:
                # Someone subscribed the same address at the same moment: the unique index
                # refused our insert, and the second pass finds their row.
                continue
        else:  # pragma: no cover - two races in a row
            raise InvalidState("Please try again.")
        if row is None:
            return  # already subscribed: nothing to confirm, and nothing to reveal
        link = unsubscribe_url(base_url, row.unsubscribe_token)
        body = "\n".join(
            [
                "Please confirm that you want Confide's update notifications and newsletter at "
                "this address:",
                "",
                confirm_url(base_url, token),
                "",
                f"The link works for {CONFIRM_DAYS} days. If you did not ask for this, ignore this "
                "email: without your confirmation we send nothing more, and the request is "
                "forgotten. To cancel it now: " + link,
                "",
                "\u2014 Confide",
            ]
        )
        error = await self.postman.send(
            Letter(clean, "Confirm your subscription to Confide updates", body, link)
        )
        await mail.record(
            self.db, "newsletter.confirm", row.id, [Outcome("subscriber", row.id, None, error)]
        )

    async def _pending(
        self, email: str, index: str, token: str, now: datetime
    ) -> NewsletterSubscription | None:
        async with self.db.session(Scope.system()) as s:
            row = await s.scalar(
                select(NewsletterSubscription).where(NewsletterSubscription.email_index == index)
            )
            if row is not None and row.state == State.SUBSCRIBED:
                return None
            if row is None:
                sub_id = new_id()
                row = NewsletterSubscription(
                    id=sub_id,
                    email=self.db.vault.seal(sub_id, KEYRING, email),
                    email_index=index,
                    state=State.PENDING.value,
                    unsubscribe_token=new_secret(),
                    created_at=now,
                )
                s.add(row)
            row.confirm_hash = secret_hash(token)
            row.confirm_expires_at = now + timedelta(days=CONFIRM_DAYS)
            await s.flush()
            return row

    async def by_confirm_token(self, token: str) -> Subscription:
        async with self.db.session(Scope.system(), read_only=True) as s:
            row = await s.scalar(
                select(NewsletterSubscription).where(
                    NewsletterSubscription.confirm_hash == secret_hash(_token(token))
                )
            )
        if row is None:
            raise NotFound("This confirmation link is not valid, or it was already cancelled.")
        return Subscription.of(row)

    async def confirm(self, token: str) -> Subscription:
        """pending → subscribed (following the link again changes nothing)."""
        now = utcnow()
        async with self.db.session(Scope.system()) as s:
            row = await s.scalar(
                select(NewsletterSubscription).where(
                    NewsletterSubscription.confirm_hash == secret_hash(_token(token))
                )
            )
            if row is None:
                raise NotFound("This confirmation link is not valid, or it was already cancelled.")
            if row.state == State.PENDING:
                if row.confirm_expires_at is None or row.confirm_expires_at < now:
                    raise InvalidState(
                        "This confirmation link has expired. Subscribe again for a new one."
                    )
                row.state, row.confirmed_at = State.SUBSCRIBED.value, now
            return Subscription.of(row)

    async def by_unsubscribe_token(self, token: str) -> Subscription:
        async with self.db.session(Scope.system(), read_only=True) as s:
            row = await s.scalar(
                select(NewsletterSubscription).where(
                    NewsletterSubscription.unsubscribe_token == _token(token)
                )
            )
        if row is None:
            raise NotFound("This unsubscribe link is not valid. Use the link in a recent email.")
        return Subscription.of(row)

    async def unsubscribe(self, token: str) -> Subscription:
        """Any state → unsubscribed, at once and for good (repeating it changes nothing)."""
        now = utcnow()
        async with self.db.session(Scope.system()) as s:
            row = await s.scalar(
                select(NewsletterSubscription).where(
                    NewsletterSubscription.unsubscribe_token == _token(token)
                )
            )
            if row is None:
                raise NotFound(
                    "This unsubscribe link is not valid. Use the link in a recent email."
                )
            changed = row.state != State.UNSUBSCRIBED
            if changed:
                row.state, row.unsubscribed_at = State.UNSUBSCRIBED.value, now
                row.email_index, row.confirm_hash, row.confirm_expires_at = None, None, None
            view = Subscription.of(row)
        if changed:
            # After commit: the address becomes unreadable everywhere, backups included.
            self.db.vault.destroy_subject(view.id)
        return view

    async def send(
        self, principal: Principal | None, *, subject: str, body: str, base_url: str
    ) -> dict[str, Any]:
        """A newsletter to every confirmed subscriber, each with their own unsubscribe link."""
        actor = require_staff(principal)
        subject, body = " ".join(subject.split()), body.strip()
        if not 3 <= len(subject) <= 200 or not 10 <= len(body) <= 100_000:
            raise InvalidInput("A newsletter needs a subject (3-200) and a body (10-100,000).")
        ref = new_id()
        async with self.db.session(Scope.system()) as s:
            subs = await recipients.subscribers(s)
            await audit.append(
                s,
                actor,
                "newsletter.send",
                subject_kind="newsletter",
                subject_ref=ref,
                purpose=f"{len(subs)} subscriber(s): {subject[:200]}",
            )
        outcomes = []
        for r in subs:
            assert r.unsubscribe_token is not None
            link = unsubscribe_url(base_url, r.unsubscribe_token)
            text = f"{body}\n\n\u2014\nYou receive this because you subscribed. Unsubscribe: {link}"
            error = await self.postman.send(Letter(r.email, subject, text, link))
            outcomes.append(Outcome("subscriber", r.id, None, error))
        await mail.record(self.db, "newsletter.sent", ref, outcomes)
        failed = sum(1 for o in outcomes if o.error)
        return {"id": ref, "subscribers": len(subs), "sent": len(subs) - failed, "failed": failed}
