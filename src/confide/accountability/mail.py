"""Notice emails: composed here, sent after the change they announce has committed.

Two kinds. A **notice to a client** (a new sub-processor, a breach, a new policy version) is part
of the contract (art. 28(2), 33(2); policy 6.3): it has no unsubscribe link, because a client
cannot opt out of being told. A **newsletter or notification email** to a subscriber always
carries ``List-Unsubscribe`` and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``
(RFC 8058), so a mail client's unsubscribe button works without a login.

Sends happen at once, one SMTP conversation each (tens of recipients, not thousands); a failure is
returned, recorded as a :class:`~confide.accountability.models.Notice` and reported to whoever
acted. Addresses are never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from confide.accountability.models import Notice
from confide.clock import utcnow
from confide.delivery.email import send_configured
from confide.settings import Settings
from confide.storage.engine import Database
from confide.storage.scope import Scope

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Letter:
    to: str
    subject: str
    body: str
    #: Set for newsletter/notification emails: the one-click unsubscribe URL.
    unsubscribe_url: str | None = None


@dataclass(frozen=True)
class Outcome:
    """One recipient's notice: who (ids only) and whether the relay took it."""

    recipient_kind: str  # user or subscriber
    recipient_id: str
    organisation_id: str | None
    error: str | None  # None: sent


class Postman:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def compose(self, letter: Letter) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.settings.mail_from
        message["To"] = letter.to
        message["Subject"] = " ".join(letter.subject.split())
        message["Date"] = format_datetime(utcnow())
        domain = parseaddr(self.settings.mail_from)[1].rpartition("@")[2] or "confide.invalid"
        message["Message-ID"] = make_msgid("notice", domain=domain)
        # RFC 3834: no out-of-office replies to a robot.
        message["Auto-Submitted"] = "auto-generated"
        if letter.unsubscribe_url:
            message["List-Unsubscribe"] = f"<{letter.unsubscribe_url}>"
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content(letter.body)
        return message

    async def send(self, letter: Letter) -> str | None:
        """Send one letter; ``None`` when the relay accepted it, else the error's class name."""
        try:
            await send_configured(self.settings, self.compose(letter))
        except Exception as exc:  # reported to the caller; never the address in the log
            log.warning("notice email not sent: %s", type(exc).__name__)
            return type(exc).__name__
        return None


async def record(db: Database, kind: str, ref: str, outcomes: Iterable[Outcome]) -> None:
    """Keep the evidence of who was sent what, and when (ids only)."""
    now = utcnow()
    rows = [
        Notice(
            kind=kind,
            ref=ref,
            organisation_id=o.organisation_id,
            recipient_kind=o.recipient_kind,
            recipient_id=o.recipient_id,
            sent_at=None if o.error else now,
            error=o.error[:120] if o.error else None,
            created_at=now,
        )
        for o in outcomes
    ]
    if rows:
        async with db.session(Scope.system()) as s:
            s.add_all(rows)
