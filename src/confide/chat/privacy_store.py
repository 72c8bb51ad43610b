"""Chat's personal data in the privacy registry: conversations, messages, visitors."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from confide.chat.models import Conversation, Message, Visitor
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


register(Store("conversations", ("conversations", "messages"), _export, _erase, order=20))
register(Store("visitors", ("visitors",), _export_visitors, _erase_visitors, order=80))
