"""What each audience sees of a conversation or message (protocol v1 frame bodies).

Agents see the organisation, site and visitor label; the visitor sees only what concerns them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from confide.chat.writer import Stored

_last_iso: tuple[datetime | None, str] = (None, "")


def iso(at: datetime) -> str:
    """RFC 3339 in UTC with a "Z"; the last answer is kept (a batch's messages share a time)."""
    global _last_iso
    last, text = _last_iso
    if at is last:
        return text
    text = at.isoformat().replace("+00:00", "Z")
    _last_iso = (at, text)
    return text


@dataclass(frozen=True)
class ConversationView:
    id: str
    state: str
    source: str
    site_id: str
    site_name: str
    organisation_id: str
    organisation_name: str
    visitor_id: str
    visitor_label: str
    visitor_name: str | None
    visitor_contact: str | None
    visit_id: str | None
    operator_id: str | None
    operator_name: str | None
    last_seq: int
    unread: int
    visitor_seen_seq: int
    agent_seen_seq: int
    preview: str | None
    created_at: datetime
    updated_at: datetime
    person_id: str | None = None
    rating: int | None = None
    rating_comment: str | None = None

    def for_agents(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "source": self.source,
            "site": {"id": self.site_id, "name": self.site_name},
            "organisation": {"id": self.organisation_id, "name": self.organisation_name},
            "visitor": {
                "label": self.visitor_label,
                "name": self.visitor_name,
                "contact": self.visitor_contact,
            },
            "operator": (
                {"id": self.operator_id, "name": self.operator_name} if self.operator_id else None
            ),
            "visit_id": self.visit_id,
            "last_seq": self.last_seq,
            "unread": self.unread,
            "visitor_seen_seq": self.visitor_seen_seq,
            "preview": self.preview,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "person_id": self.person_id,
            "rating": (
                {"score": self.rating, "comment": self.rating_comment} if self.rating else None
            ),
        }

    def for_visitor(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "operator": {"name": self.operator_name} if self.operator_id else None,
            "last_seq": self.last_seq,
            "agent_seen_seq": self.agent_seen_seq,
            "created_at": iso(self.created_at),
            "rated": self.rating is not None,
        }


@dataclass(frozen=True)
class MessageView:
    seq: int
    client_id: str
    author_role: str
    author_name: str
    text: str
    created_at: datetime

    def frame(self, conversation_id: str) -> dict[str, Any]:
        return {
            "type": "message",
            "conversation": conversation_id,
            "seq": self.seq,
            "client_id": self.client_id,
            "author": {"role": self.author_role, "name": self.author_name},
            "text": self.text,
            "at": iso(self.created_at),
        }


def message_frame(m: Stored) -> dict[str, Any]:
    return {
        "type": "message",
        "conversation": m.conversation_id,
        "seq": m.seq,
        "client_id": m.client_id,
        "author": {"role": m.author_role, "name": m.author_name},
        "text": m.text,
        "at": iso(m.created_at),
    }


def ack_frame(m: Stored, ref: str | None) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "type": "ack",
        "conversation": m.conversation_id,
        "client_id": m.client_id,
        "seq": m.seq,
        "at": iso(m.created_at),
        "duplicate": m.duplicate,
    }
    if m.notice is not None:
        # The stored text differs from what the sender typed: they must see what was kept.
        frame["notice"] = m.notice
        frame["text"] = m.text
    if ref is not None:
        frame["ref"] = ref
    return frame
