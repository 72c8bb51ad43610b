"""Consent in the chat (policy 2.3, R25-R28): the question, the answer, immutable evidence."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from confide.accountability.models import PolicyVersion
from confide.sites.models import Site

PURPOSE = "share_with_dealer"
ANSWERS = ("granted", "denied", "withdrawn")

DEFAULT_TEXT = (
    "May we pass your name, contact details and this conversation to {site} so they can "
    "reply to your enquiry? They will use them as described in their privacy policy. "
    "You can withdraw this at any time in this chat."
)

ANSWER_LINES = {
    "granted": "The visitor agreed to share their details with {site}.",
    "denied": (
        "The visitor chose not to share their details with {site}. The chat goes on as usual."
    ),
    "withdrawn": "The visitor withdrew their consent to share their details with {site}.",
}


async def policy_version_for(s: AsyncSession, site: Site) -> str:
    """The policy the visitor consents under: the client's own (when the site links one), else
    the newest published platform policy (policy 6), else the site's configured version."""
    if site.privacy_policy_url:
        return site.policy_version
    newest = await s.scalar(
        select(PolicyVersion.version)
        .order_by(PolicyVersion.published_at.desc(), PolicyVersion.id.desc())
        .limit(1)
    )
    return newest or site.policy_version


def render_text(site: Site) -> str:
    """The exact question shown; stored and hashed as evidence, so rendered once, here."""
    return (site.consent_text or DEFAULT_TEXT).replace("{site}", site.name)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ConsentState:
    """What the chat shows: the open question (if any) and the latest answer."""

    request_id: str | None
    text: str | None
    policy_url: str | None
    policy_version: str | None
    answer: str | None
    answered_at: datetime | None
    record_id: str | None

    @property
    def granted(self) -> bool:
        return self.answer == "granted"

    def frame(self, conversation_id: str) -> dict[str, object]:
        return {
            "type": "consent",
            "conversation": conversation_id,
            "request": (
                {
                    "id": self.request_id,
                    "text": self.text,
                    "policy_url": self.policy_url,
                    "policy_version": self.policy_version,
                }
                if self.request_id
                else None
            ),
            "answer": self.answer,
            "answered_at": self.answered_at.isoformat() if self.answered_at else None,
        }
