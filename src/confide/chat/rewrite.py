"""Rewriting a stored transcript in place: personal details taken out after the fact (an
under-age visitor's details, values a visitor corrected). Each changed message is sealed again
under the visitor's key; unchanged ones are not written."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from confide.chat.models import Conversation, Message

Seal = Callable[[str, str, str | None], str | None]


async def rewrite_transcript(
    s: AsyncSession, conv: Conversation, seal: Seal, change: Callable[[str], str]
) -> int:
    """Apply ``change`` to every message of ``conv``; returns how many changed."""
    rows = await s.execute(
        select(Message.id, Message.text).where(Message.conversation_id == conv.id)
    )
    changed = 0
    for message_id, text in rows.all():
        new = change(text)
        if new != text:
            sealed = seal(conv.visitor_id, conv.organisation_id, new)
            await s.execute(update(Message).where(Message.id == message_id).values(text=sealed))
            changed += 1
    return changed


def replace_spans(text: str, spans: list[tuple[int, int]], placeholder: str) -> str:
    """``text`` with each span replaced by ``placeholder``; overlapping spans become one."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    for start, end in reversed(merged):
        text = text[:start] + placeholder + text[end:]
    return text
