"""Emails about privacy requests: codes, acknowledgements, decisions, results, reminders.

Sent at once (not through the outbox): a code must arrive while the person waits, and a failed
send is reported to them so they can ask again. Nothing here is logged with its recipient.
"""

from __future__ import annotations

import logging
from email.message import EmailMessage

from confide.delivery.email import send_configured
from confide.settings import Settings

log = logging.getLogger(__name__)

COMPLAINT_ROUTE = (
    "If you are not satisfied with this answer you may complain to a data protection "
    "supervisory authority, for example the UK Information Commissioner's Office "
    "(https://ico.org.uk/make-a-complaint/) or the authority where you live or work."
)


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, to: str, subject: str, body: str) -> bool:
        message = EmailMessage()
        message["From"] = self.settings.mail_from
        message["To"] = to
        message["Subject"] = subject.replace("\n", " ")
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(body)
        try:
            await send_configured(self.settings, message)
        except Exception as exc:  # reported to the caller; never the address in the log
            log.warning("privacy email not sent: %s", type(exc).__name__)
            return False
        return True


def acknowledgement(org: str, kind: str, due: str, code: str | None) -> tuple[str, str]:
    lines = [
        f"We have received your {kind.replace('_', ' ')} request to {org}.",
        "",
        "How it works: before anything is decided we check that the request comes from you. "
        "If we hold information linked to the details you gave, we send a one-time code to the "
        "email address or phone number we have on file, in a separate message; enter it on the "
        "request page within 10 minutes.",
        "",
    ]
    if code:
        lines += [f"Your code: {code}", ""]
    lines += [f"You can expect our answer by {due} at the latest.", "", "— Confide, for " + org]
    return f"Your privacy request to {org}", "\n".join(lines)
