"""The read side of chat: conversation views, history, search. Always in the caller's scope."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from confide.accounts.models import Organisation, User
from confide.chat.models import Conversation, Message, Visitor
from confide.chat.views import ConversationView, MessageView
from confide.sites.models import Site

#: One sync/history reply carries at most this many messages; the client asks again for more.
HISTORY_PAGE = 1000
PAGE_SIZE = 25


def _view_select() -> Select[tuple[object, ...]]:
    operator = aliased(User)
    last_message = aliased(Message)
    unread_message = aliased(Message)
    preview = (
        select(last_message.text)
        .where(last_message.conversation_id == Conversation.id)
        .order_by(last_message.seq.desc())
        .limit(1)
        .scalar_subquery()
    )
    unread = (
        select(func.count())
        .select_from(unread_message)
        .where(
            unread_message.conversation_id == Conversation.id,
            unread_message.author_role == "visitor",
            unread_message.seq > Conversation.agent_seen_seq,
        )
        .scalar_subquery()
    )
    return (
        select(
            Conversation,
            Site.name,
            Organisation.name,
            Visitor.label,
            operator.name,
            unread,
            preview,
        )
        .join(Site, Site.id == Conversation.site_id)
        .join(Organisation, Organisation.id == Conversation.organisation_id)
        .join(Visitor, Visitor.id == Conversation.visitor_id)
        .outerjoin(operator, operator.id == Conversation.operator_id)
    )


def _to_view(row: tuple[object, ...]) -> ConversationView:
    c, site_name, org_name, label, operator_name, unread, preview = row
    assert isinstance(c, Conversation)
    text = str(preview) if preview is not None else None
    return ConversationView(
        id=c.id,
        state=c.state,
        source=c.source,
        site_id=c.site_id,
        site_name=str(site_name),
        organisation_id=c.organisation_id,
        organisation_name=str(org_name),
        visitor_id=c.visitor_id,
        visitor_label=str(label),
        visitor_name=c.visitor_name,
        visitor_contact=c.visitor_contact,
        visit_id=c.visit_id,
        operator_id=c.operator_id,
        operator_name=str(operator_name) if operator_name is not None else None,
        last_seq=c.last_seq,
        unread=int(unread or 0),  # type: ignore[call-overload]
        visitor_seen_seq=c.visitor_seen_seq,
        agent_seen_seq=c.agent_seen_seq,
        preview=text[:140] if text else None,
        created_at=c.created_at,
        updated_at=c.updated_at,
        person_id=c.person_id,
        rating=c.rating,
        rating_comment=c.rating_comment,
    )


async def conversation_view(s: AsyncSession, conversation_id: str) -> ConversationView | None:
    row = (await s.execute(_view_select().where(Conversation.id == conversation_id))).first()
    return _to_view(tuple(row)) if row is not None else None


async def agent_queue(
    s: AsyncSession, user_id: str, site_ids: frozenset[str]
) -> list[ConversationView]:
    """Waiting conversations on my sites and active ones assigned to me, oldest first."""
    stmt = (
        _view_select()
        .where(
            Conversation.site_id.in_(site_ids),
            or_(
                Conversation.state == "waiting",
                and_(Conversation.state == "active", Conversation.operator_id == user_id),
            ),
        )
        .order_by(Conversation.created_at)
    )
    return [_to_view(tuple(r)) for r in (await s.execute(stmt)).all()]


async def messages_after(s: AsyncSession, conversation_id: str, after: int) -> list[MessageView]:
    author = aliased(User)
    rows = await s.execute(
        select(Message, author.name, Visitor.label, Conversation.visitor_name)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .join(Visitor, Visitor.id == Conversation.visitor_id)
        .outerjoin(author, author.id == Message.author_id)
        .where(Message.conversation_id == conversation_id, Message.seq > after)
        .order_by(Message.seq)
        .limit(HISTORY_PAGE)
    )
    views = []
    for m, agent_name, label, visitor_name in rows.all():
        if m.author_role == "agent":
            name = agent_name or "Agent"
        elif m.author_role == "visitor":
            name = visitor_name or label
        else:
            name = "Confide"
        views.append(MessageView(m.seq, m.client_id, m.author_role, name, m.text, m.created_at))
    return views


@dataclass(frozen=True)
class SearchHit:
    view: ConversationView
    message_count: int
    snippet: str | None


#: Message text is encrypted per visitor, so a search cannot run in SQL: it decrypts the newest
#: conversations in the caller's scope and matches them here, up to this many conversations.
SEARCH_SCAN = 2000


async def search(
    s: AsyncSession, *, q: str, site_id: str | None, page: int
) -> tuple[list[SearchHit], bool]:
    """Conversations (newest first) whose messages or visitor name contain ``q``.

    Without ``q`` this is a page of the newest conversations. With ``q``, the newest
    ``SEARCH_SCAN`` conversations in scope are scanned (text is decrypted only in this process).
    """
    count = (
        select(func.count())
        .select_from(Message)
        .where(Message.conversation_id == Conversation.id)
        .scalar_subquery()
    )
    stmt = _view_select().add_columns(count)
    if site_id:
        stmt = stmt.where(Conversation.site_id == site_id)
    stmt = stmt.order_by(Conversation.updated_at.desc(), Conversation.id.desc())
    if not q:
        rows = (await s.execute(stmt.offset(page * PAGE_SIZE).limit(PAGE_SIZE + 1))).all()
        hits = [SearchHit(_to_view(tuple(r)[:-1]), int(r[-1]), None) for r in rows[:PAGE_SIZE]]
        return hits, len(rows) > PAGE_SIZE
    needle = q.casefold()
    wanted = (page + 1) * PAGE_SIZE + 1
    found: list[SearchHit] = []
    for offset in range(0, SEARCH_SCAN, 200):
        rows = (await s.execute(stmt.offset(offset).limit(200))).all()
        views = [(_to_view(tuple(r)[:-1]), int(r[-1])) for r in rows]
        snippets = await _matches(s, [v.id for v, _n in views], needle)
        for view, n in views:
            name_hit = view.visitor_name is not None and needle in view.visitor_name.casefold()
            if view.id in snippets or name_hit:
                found.append(SearchHit(view, n, snippets.get(view.id)))
        if len(found) >= wanted or len(rows) < 200:
            break
    return found[page * PAGE_SIZE : (page + 1) * PAGE_SIZE], len(found) > (page + 1) * PAGE_SIZE


async def _matches(s: AsyncSession, conversation_ids: list[str], needle: str) -> dict[str, str]:
    """The first message (≤ 200 chars) of each conversation that contains ``needle``."""
    if not conversation_ids:
        return {}
    rows = await s.execute(
        select(Message.conversation_id, Message.text)
        .where(Message.conversation_id.in_(conversation_ids))
        .order_by(Message.conversation_id, Message.seq)
    )
    out: dict[str, str] = {}
    for cid, text in rows.all():
        if cid not in out and text and needle in text.casefold():
            out[cid] = text[:200]
    return out
