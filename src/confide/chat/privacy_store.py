"""Chat's personal data in the privacy registry: conversations, messages, visitors, and the
blind indexes of the emails and phones visitors typed (chat/identifiers.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, delete, or_
from sqlalchemy.ext.asyncio import AsyncSession

from confide.chat.models import ChatIdentifier, Conversation, Message, Visitor
from confide.privacy.registry import Store, Subject, register, rows_of


async def _export(s: AsyncSession, subject: Subject) -> list[dict[str, Any]]:
    conversations = await rows_of(s, Conversation, Conversation.id.in_(subject.conversation_ids))
    messages = await rows_of(s, Message, Message.conversation_id.in_(subject.conversation_ids))
    by_conv: dict[str, list[dict[str, Any]]] = {}
    for m in sorted(messages, key=lambda m: (m["conversation_id"], m["seq"])):
        by_conv.setdefault(m["conversation_id"], []).append(
            {k: m[k] for k in ("seq", "author_role", "text", "created_at")}
        )
    for c in conversations:
        c["messages"] = by_conv.get(c["id"], [])
    return conversations


async def _erase(s: AsyncSession, subject: Subject) -> int:
    n = (
        await s.execute(
            delete(Message).where(Message.conversation_id.in_(subject.conversation_ids))
        )
    ).rowcount or 0  # type: ignore[attr-defined]
    n += (
        await s.execute(delete(Conversation).where(Conversation.id.in_(subject.conversation_ids)))
    ).rowcount or 0  # type: ignore[attr-defined]
    return int(n)


async def _export_visitors(s: AsyncSession, subject: Subject) -> list[dict[str, Any]]:
    rows = await rows_of(s, Visitor, Visitor.id.in_(subject.visitor_ids))
    for r in rows:
        r.pop("token_hash", None)  # a credential hash, not information about the person
    return rows


async def _erase_visitors(s: AsyncSession, subject: Subject) -> int:
    result = await s.execute(delete(Visitor).where(Visitor.id.in_(subject.visitor_ids)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _typed_by(subject: Subject) -> ColumnElement[bool]:
    return or_(
        ChatIdentifier.visitor_id.in_(subject.visitor_ids),
        ChatIdentifier.conversation_id.in_(subject.conversation_ids),
    )


async def _export_identifiers(s: AsyncSession, subject: Subject) -> list[dict[str, Any]]:
    """Which kind of detail was typed where and when; the keyed index is not the person's data
    (as for a person's ``email_index``), and the value itself is in the message."""
    rows = await rows_of(s, ChatIdentifier, _typed_by(subject))
    keep = ("conversation_id", "seq", "kind", "created_at")
    return [{k: r[k] for k in keep} for r in sorted(rows, key=lambda r: r["id"])]


async def _erase_identifiers(s: AsyncSession, subject: Subject) -> int:
    result = await s.execute(delete(ChatIdentifier).where(_typed_by(subject)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


register(
    Store(
        "chat_identifiers",
        ("chat_identifiers",),
        _export_identifiers,
        _erase_identifiers,
        order=18,  # before their conversations (which would also take them, ON DELETE CASCADE)
    )
)
register(Store("conversations", ("conversations", "messages"), _export, _erase, order=20))
register(Store("visitors", ("visitors",), _export_visitors, _erase_visitors, order=80))
