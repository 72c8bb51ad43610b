"""A copy of the chat by email, when the visitor asks for it (policy 2.3: "a transcript of the
chat when requested").

Why sent at once rather than through the outbox: the visitor is waiting for the answer and is
told whether it worked (``transcript_sent`` or an error to retry); nothing is promised that a
later retry would have to keep. The address is used for this one message and not stored; the
audit trail records that the transcript left, not where to.
"""

from __future__ import annotations

import logging
import smtplib
import time
from email.message import EmailMessage

from email_validator import EmailNotValidError, validate_email

from confide.audit.log import Actor as AuditActor
from confide.audit.log import AuditLog
from confide.chat.service import ChatService, ConversationRef, VisitorActor
from confide.chat.views import MessageView
from confide.delivery.email import send_configured
from confide.errors import ConfideError, InvalidInput, RateLimited
from confide.lru import LruDict
from confide.settings import Settings

log = logging.getLogger(__name__)


class MailFailed(ConfideError):
    """The mail server did not take the message: nothing was sent; the visitor may retry."""

    code = "mail_failed"


#: Copies per conversation within ``WINDOW_S``: enough for a typo, too few to spam anyone.
MAX_PER_WINDOW = 3
WINDOW_S = 3600.0


class TranscriptMailer:
    def __init__(self, chat: ChatService, settings: Settings) -> None:
        self.chat = chat
        self.settings = settings
        #: Conversation id -> when copies were sent (the most recently used 10,000).
        self._sent: LruDict[str, list[float]] = LruDict(10_000)

    async def send(
        self, visitor: VisitorActor, ref: ConversationRef, address: str, site_name: str
    ) -> None:
        """Email the conversation so far to ``address``; raises on a bad address, too many
        copies, or an SMTP failure (nothing was sent then)."""
        try:
            to = validate_email(address, check_deliverability=False).normalized
        except EmailNotValidError:
            raise InvalidInput("That email address is not valid. Please check it.") from None
        recent = self._recent(ref.id)
        messages = (await self.chat.history(visitor, ref, 0)).messages
        if not messages:
            raise InvalidInput("There is nothing in this chat to send yet.")
        cfg = self.settings
        try:
            await send_configured(
                cfg, compose(messages, site_name, sender=cfg.mail_from, recipient=to)
            )
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("transcript email failed: %s", type(exc).__name__)
            raise MailFailed("We could not send the email just now. Please try again.") from None
        self._sent[ref.id] = [*recent, time.monotonic()]
        await AuditLog(self.chat.db).record(
            AuditActor(None, "visitor"),
            "transcript.emailed",
            organisation_id=ref.organisation_id,
            subject_kind="conversation",
            subject_ref=ref.id,
            fields=["messages"],
            purpose="the visitor asked for a copy of their chat",
        )

    def _recent(self, conversation_id: str) -> list[float]:
        """The copies sent within the window; raises once there are ``MAX_PER_WINDOW``."""
        now = time.monotonic()
        recent = [t for t in self._sent.get(conversation_id, []) if now - t < WINDOW_S]
        self._sent[conversation_id] = recent
        if len(recent) >= MAX_PER_WINDOW:
            raise RateLimited("This chat was already sent a few times. Please try again later.")
        return recent


def compose(
    messages: list[MessageView], site_name: str, *, sender: str, recipient: str
) -> EmailMessage:
    """Plain text only: what was said, by whom, when (UTC). No HTML, so nothing a visitor or
    an agent typed can become markup in a mail client."""
    lines = [f"Your chat with {site_name}", ""]
    for m in messages:
        who = "You" if m.author_role == "visitor" else m.author_name
        lines.append(f"[{m.created_at:%d %b %Y %H:%M} UTC] {who}:")
        lines.extend(f"  {line}" for line in m.text.splitlines() or [""])
    lines += [
        "",
        "You asked for this copy in the chat. We used your address only to send it.",
    ]
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = f"Your chat with {site_name}"
    message["Auto-Submitted"] = "auto-replied"
    message.set_content("\n".join(lines))
    return message
