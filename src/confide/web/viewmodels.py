"""What the console templates read: plain objects with exactly the fields a page shows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from confide.chat.views import ConversationView, MessageView


@dataclass(frozen=True)
class SiteItem:
    id: str
    name: str
    organisation_name: str


@dataclass(frozen=True)
class HistoryItem:
    id: str
    state: str
    source: str
    site_name: str
    organisation_name: str
    visitor_label: str
    visitor_contact: str | None
    operator_name: str | None
    created_at: datetime
    message_count: int
    snippet: str | None
    messages: list[MessageView] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        view: ConversationView,
        message_count: int,
        snippet: str | None,
        messages: list[MessageView] | None = None,
    ) -> HistoryItem:
        return cls(
            id=view.id,
            state=view.state,
            source=view.source,
            site_name=view.site_name,
            organisation_name=view.organisation_name,
            visitor_label=view.visitor_name or view.visitor_label,
            visitor_contact=view.visitor_contact,
            operator_name=view.operator_name,
            created_at=view.created_at,
            message_count=message_count,
            snippet=snippet,
            messages=messages or [],
        )
