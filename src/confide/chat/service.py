"""Chat use cases. Each state change commits, then publishes its events (never before commit).

Transports (WebSocket, HTTP) call these functions and nothing else, so they cannot drift apart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from confide.accounts.principal import Principal
from confide.audit.log import Actor as AuditActor
from confide.audit.log import AuditLog
from confide.chat import identifiers, queries, recipients
from confide.chat.lifecycle import OPEN_STATES, State, transition
from confide.chat.models import ChatIdentifier, Conversation, Message, Visitor
from confide.chat.views import ConversationView, MessageView, ack_frame, message_frame
from confide.chat.writer import Draft, MessageWriter, Stored
from confide.clock import utcnow
from confide.errors import EmptyText, InvalidInput, InvalidState, NotFound, TextTooLong
from confide.ids import new_id, new_secret, pseudonym, secret_hash
from confide.leads.detect import mask_cards
from confide.leads.gpc import honour_gpc
from confide.leads.models import Person
from confide.realtime.broker import Broker, Event
from confide.realtime.protocol import MAX_NAME_CHARS, MAX_TEXT_CHARS
from confide.sites.models import Site
from confide.storage.engine import Database
from confide.storage.scope import Scope
from confide.tracking.models import Visit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VisitorActor:
    """A widget connection: one visitor on one site."""

    visitor_id: str
    site_id: str
    organisation_id: str
    label: str
    name: str | None = None


Actor = VisitorActor | Principal


class History(NamedTuple):
    """Messages after a seq, read with the marks they must agree with.

    The agents' seen mark is read in the same transaction as the messages: a console that took
    its unread count from an earlier ``conversation`` frame would call a message that committed
    in between already seen.
    """

    messages: list[MessageView]
    last_seq: int
    agent_seen_seq: int


@dataclass(frozen=True)
class ConversationRef:
    """What a connection needs to post into a conversation it has been authorised for."""

    id: str
    organisation_id: str
    site_id: str
    #: The data subject whose key seals what is said in this conversation.
    visitor_id: str


def clean_text(text: str) -> str:
    text = text.strip()
    if not text:
        raise EmptyText("Write a message first.")
    if len(text) > MAX_TEXT_CHARS:
        raise TextTooLong(f"Messages are limited to {MAX_TEXT_CHARS} characters.")
    return text


class ChatService:
    def __init__(
        self, db: Database, broker: Broker, *, visitor_session: timedelta = timedelta(hours=12)
    ) -> None:
        self.db = db
        self.broker = broker
        #: How long a visitor's token stays good without the widget connecting (R11).
        self.visitor_session = visitor_session
        self.writer: MessageWriter | None = None
        #: Told about each stored visitor message that may hold an email or a phone number:
        #: the lead service makes the person (R23). Wired by the app context.
        self.on_visitor_details: Callable[[Stored], Coroutine[Any, Any, None]] | None = None
        self._background: set[asyncio.Task[None]] = set()

    def attach_writer(self, writer: MessageWriter) -> None:
        self.writer = writer

    # --- visitors -------------------------------------------------------------------------

    async def resume_visitor(
        self, site: Site, token: str | None, *, gpc: bool = False
    ) -> tuple[VisitorActor | None, ConversationView | None]:
        """The visitor holding ``token`` on this site and their open conversation, if any.

        The token is session-scoped (R11): the widget keeps it in the tab's sessionStorage, and
        it is refused here once the widget has not connected for ``visitor_session``, so a
        copied or left-over token cannot open the chat later (the visitor then starts afresh;
        their earlier chats come back only if they chat again, R24).
        ``gpc``: the browser sends Global Privacy Control now; it is honoured for the visitor
        and anyone they gave details as, even if an earlier session did not send it."""
        if not token:
            return None, None
        async with self.db.session(Scope.system()) as s:
            visitor = await s.scalar(
                select(Visitor).where(
                    Visitor.token_hash == secret_hash(token), Visitor.site_id == site.id
                )
            )
            now = utcnow()
            if visitor is None or visitor.last_seen_at < now - self.visitor_session:
                return None, None
            visitor.last_seen_at = now
            if gpc and not visitor.gpc:
                await honour_gpc(s, visitor.id, None, visitor.last_seen_at)
            conv_id = await s.scalar(
                select(Conversation.id)
                .where(Conversation.visitor_id == visitor.id, Conversation.state.in_(OPEN_STATES))
                .order_by(Conversation.created_at.desc())
                .limit(1)
            )
            view = await queries.conversation_view(s, conv_id) if conv_id else None
            actor = VisitorActor(visitor.id, site.id, site.organisation_id, visitor.label)
        return actor, view

    async def open_conversation(
        self,
        site: Site,
        actor: VisitorActor | None,
        name: str | None,
        visit_id: str | None = None,
        *,
        gpc: bool = False,
    ) -> tuple[VisitorActor, ConversationView, str | None]:
        """The visitor's open conversation, or a new one waiting for an agent.

        Returns the actor, the conversation, and a new visitor token when one was issued: the
        identifier is created only now, when the visitor asks for the chat (strictly necessary).
        """
        if name is not None:
            name = name.strip()[:MAX_NAME_CHARS] or None
        now = utcnow()
        token = None
        async with self.db.session(Scope.system()) as s:
            if actor is None:
                token = new_secret()
                visitor_id = new_id()
                visitor = Visitor(
                    id=visitor_id,
                    organisation_id=site.organisation_id,
                    site_id=site.id,
                    token_hash=secret_hash(token),
                    label=pseudonym(visitor_id),
                    gpc=gpc,
                    created_at=now,
                    last_seen_at=now,
                )
                s.add(visitor)
                await s.flush()  # no ORM relationships: insert the visitor before its conversation
                actor = VisitorActor(visitor.id, site.id, site.organisation_id, visitor.label)
            else:
                existing = await s.scalar(
                    select(Conversation.id)
                    .where(
                        Conversation.visitor_id == actor.visitor_id,
                        Conversation.state.in_(OPEN_STATES),
                    )
                    .limit(1)
                )
                if existing is not None:
                    view = await queries.conversation_view(s, existing)
                    assert view is not None
                    return actor, view, None
            sealed_name = self.db.vault.seal(actor.visitor_id, site.organisation_id, name)
            conv = _new_conversation(site, actor.visitor_id, "chat", now, name=sealed_name)
            # A returning visitor who chats again: their earlier details come with them (R24).
            conv.person_id = await s.scalar(
                select(Person.id)
                .where(Person.visitor_id == actor.visitor_id)
                .order_by(Person.created_at.desc())
                .limit(1)
            )
            if visit_id is not None:
                # The visit's path and usage data become the chat's context (policy 2.3), in the
                # same transaction, so the first event agents receive already names the visit.
                linked = await s.execute(
                    update(Visit)
                    .where(Visit.id == visit_id, Visit.site_id == site.id)
                    .values(conversation_id=conv.id)
                )
                if linked.rowcount:  # type: ignore[attr-defined]
                    conv.visit_id = visit_id
                    if conv.person_id is None:
                        conv.person_id = await _person_of_browser(s, visit_id)
                    if conv.person_id is not None:
                        await s.execute(
                            update(Visit)
                            .where(Visit.id == visit_id)
                            .values(person_id=conv.person_id)
                        )
            if gpc:
                await honour_gpc(s, actor.visitor_id, conv.person_id, now)
            s.add(conv)
            await s.flush()
            view = await queries.conversation_view(s, conv.id)
            assert view is not None
        await self.publish_change(view)
        return actor, view, token

    async def enquiry(self, site: Site, name: str, contact: str, message: str) -> ConversationView:
        """The offline form: stored as a conversation waiting for an agent."""
        name, contact = name.strip(), contact.strip()
        if not 1 <= len(name) <= MAX_NAME_CHARS:
            raise InvalidInput(f"Please give your name (up to {MAX_NAME_CHARS} characters).")
        if not 3 <= len(contact) <= 200:
            raise InvalidInput("Please give an email address or phone number we can reach you on.")
        text = clean_text(message)
        now = utcnow()
        async with self.db.session(Scope.system()) as s:
            visitor_id = new_id()
            s.add(
                Visitor(
                    id=visitor_id,
                    organisation_id=site.organisation_id,
                    site_id=site.id,
                    token_hash=None,
                    label=pseudonym(visitor_id),
                    created_at=now,
                    last_seen_at=now,
                )
            )
            await s.flush()
            seal = self.db.vault.seal
            conv = _new_conversation(
                site,
                visitor_id,
                "enquiry",
                now,
                name=seal(visitor_id, site.organisation_id, name),
                contact=seal(visitor_id, site.organisation_id, contact),
            )
            conv.last_seq = 1
            s.add(conv)
            await s.flush()
            s.add(
                Message(
                    organisation_id=site.organisation_id,
                    site_id=site.id,
                    conversation_id=conv.id,
                    seq=1,
                    client_id="enquiry-" + new_id(),
                    author_role="visitor",
                    author_id=None,
                    text=seal(visitor_id, site.organisation_id, text),
                    created_at=now,
                )
            )
            # The contact field and the text, indexed like a chat message (chat/identifiers.py).
            typed = f"{contact}\n{text}"
            found = identifiers.detect(typed, site.country, self.db.vault.blind_index)
            org_id = site.organisation_id
            rows = identifiers.rows(org_id, conv.id, visitor_id, 1, found, now)
            s.add_all(ChatIdentifier(**row) for row in rows)
            await s.flush()
            view = await queries.conversation_view(s, conv.id)
            assert view is not None
        await self.publish_change(view)
        return view

    # --- authorisation ----------------------------------------------------------------------

    async def authorise(self, actor: Actor, conversation_id: str) -> ConversationRef:
        """The conversation if ``actor`` may see it; otherwise NotFound (never 'forbidden',
        so another tenant's ids are indistinguishable from missing ones)."""
        scope = actor.scope if isinstance(actor, Principal) else Scope.system()
        async with self.db.session(scope, read_only=True) as s:
            conv = await s.scalar(select(Conversation).where(Conversation.id == conversation_id))
        if conv is None:
            raise NotFound("No such conversation.")
        if isinstance(actor, VisitorActor):
            if conv.visitor_id != actor.visitor_id:
                raise NotFound("No such conversation.")
        elif conv.site_id not in actor.site_ids and not actor.scope.unrestricted:
            raise NotFound("No such conversation.")
        return ConversationRef(conv.id, conv.organisation_id, conv.site_id, conv.visitor_id)

    # --- messages -------------------------------------------------------------------------

    async def post(
        self,
        actor: Actor,
        ref: ConversationRef,
        client_id: str,
        text: str,
        origin: str | None = None,
    ) -> Stored:
        """Store a message; returns after commit (the caller acks then). Idempotent on client_id."""
        return await self.submit(actor, ref, client_id, text, origin)

    def submit(
        self,
        actor: Actor,
        ref: ConversationRef,
        client_id: str,
        text: str,
        origin: str | None = None,
    ) -> asyncio.Future[Stored]:
        """Queue a message for the writer; the future resolves after its commit.

        Why not only ``post``: a socket acks from the future's callback and reads its next frame
        meanwhile, instead of parking a coroutine stack per message until the commit (the writer
        commits in arrival order, so a socket's messages keep their order either way).

        ``origin`` is the sending socket: the ``ack`` is its copy, so the ``message`` broadcast
        goes to everyone else (other tabs of the same person included), one frame fewer each.

        Payment card numbers are masked here, before anything is stored, shown or forwarded
        (on both sides): nobody should ever hold them, and a chat is no place for them.
        """
        assert self.writer is not None
        masked = mask_cards(clean_text(text))
        text, notice = masked.text, ("card_masked" if masked.cards else None)
        if isinstance(actor, Principal):
            role, author_id, name = "agent", actor.user_id, actor.name
        else:
            role, author_id, name = "visitor", None, actor.name or actor.label
        draft = Draft(
            ref.id,
            ref.organisation_id,
            ref.site_id,
            client_id,
            role,
            author_id,
            name,
            text,
            asyncio.get_running_loop().create_future(),
            notice,
            self.db.vault.seal(ref.visitor_id, ref.organisation_id, text),
            origin,
            ref.visitor_id,
        )
        return self.writer.enqueue(draft)

    async def post_system(self, ref: ConversationRef, client_id: str, text: str) -> Stored:
        """A line in the transcript written by the product itself (consent questions, answers)."""
        assert self.writer is not None
        loop = asyncio.get_running_loop()
        draft = Draft(
            ref.id,
            ref.organisation_id,
            ref.site_id,
            client_id,
            "system",
            None,
            "Confide",
            text,
            loop.create_future(),
            None,
            self.db.vault.seal(ref.visitor_id, ref.organisation_id, text),
        )
        stored = await self.writer.submit(draft)
        return stored

    async def publish_committed(self, stored: list[Stored]) -> None:
        """Called by the writer after each commit: one event per new message."""
        for m in stored:
            channels = recipients.for_message(m.conversation_id, m.site_id, m.state == "waiting")
            await self.broker.publish(Event(channels, message_frame(m), m.origin))
            details = m.author_role == "visitor" and identifiers.may_hold_details(m.text)
            if details and self.on_visitor_details is not None:
                self._later(self.on_visitor_details(m))

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` beside the chat: the message is stored and acked without waiting for it
        (the writer calls us before it resolves the senders' futures)."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("details typed in a chat were not recorded", exc_info=task.exception())

    async def settle(self) -> None:
        """Wait for the work started beside the chat (at shutdown, and in tests)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    @staticmethod
    def ack(m: Stored, ref: str | None) -> dict[str, object]:
        return ack_frame(m, ref)

    async def history(self, actor: Actor, ref: ConversationRef, after: int) -> History:
        async with self.db.session(Scope.system(), read_only=True) as s:
            messages = await queries.messages_after(s, ref.id, after)
            marks = (
                await s.execute(
                    select(Conversation.last_seq, Conversation.agent_seen_seq).where(
                        Conversation.id == ref.id
                    )
                )
            ).one_or_none()
        if isinstance(actor, Principal) and messages:
            await AuditLog(self.db).record(
                AuditActor.of(actor),
                "transcript.view",
                organisation_id=ref.organisation_id,
                subject_kind="conversation",
                subject_ref=ref.id,
                fields=["messages"],
                purpose=f"live chat (messages after {after})",
            )
        last, agents_seen = marks or (0, 0)
        return History(messages, int(last or 0), int(agents_seen or 0))

    # --- lifecycle ------------------------------------------------------------------------

    async def accept(self, agent: Principal, ref: ConversationRef) -> ConversationView:
        async with self.db.session(agent.scope) as s:
            state = await s.scalar(select(Conversation.state).where(Conversation.id == ref.id))
            if state is None:
                raise NotFound("No such conversation.")
            transition(state, State.ACTIVE)
            result = await s.execute(
                update(Conversation)
                .where(Conversation.id == ref.id, Conversation.state == State.WAITING.value)
                .values(state=State.ACTIVE.value, operator_id=agent.user_id, updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise InvalidState("Another agent accepted this conversation first.")
            view = await queries.conversation_view(s, ref.id)
            assert view is not None
        await self.publish_change(view)
        return view

    async def close(self, actor: Actor, ref: ConversationRef) -> ConversationView:
        now = utcnow()
        async with self.db.session(Scope.system()) as s:
            state = await s.scalar(select(Conversation.state).where(Conversation.id == ref.id))
            if state is None:
                raise NotFound("No such conversation.")
            transition(state, State.CLOSED)
            result = await s.execute(
                update(Conversation)
                .where(Conversation.id == ref.id, Conversation.state.in_(OPEN_STATES))
                .values(state=State.CLOSED.value, closed_at=now, updated_at=now)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise InvalidState("The conversation is already closed.")
            view = await queries.conversation_view(s, ref.id)
            assert view is not None
        await self.publish_change(view)
        return view

    async def rate(
        self, actor: VisitorActor, ref: ConversationRef, score: int, comment: str | None
    ) -> ConversationView:
        """The visitor's rating of the chat (the policy's "customer reviews"); may be changed."""
        if not 1 <= score <= 5:
            raise InvalidInput("A rating is a whole number from 1 to 5.")
        comment = (comment or "").strip()[:1000] or None
        async with self.db.session(Scope.system()) as s:
            conv = await s.get(Conversation, ref.id)
            if conv is None or conv.visitor_id != actor.visitor_id:
                raise NotFound("No such conversation.")
            if conv.last_seq == 0:
                raise InvalidState("There is nothing to rate yet.")
            sealed = self.db.vault.seal(conv.visitor_id, conv.organisation_id, comment)
            conv.rating, conv.rating_comment, conv.rated_at = score, sealed, utcnow()
            await s.flush()
            view = await queries.conversation_view(s, ref.id)
            assert view is not None
        await self.publish_change(view)
        return view

    async def seen(self, actor: Actor, ref: ConversationRef, seq: int) -> None:
        role = "agent" if isinstance(actor, Principal) else "visitor"
        column = Conversation.agent_seen_seq if role == "agent" else Conversation.visitor_seen_seq
        async with self.db.session(Scope.system()) as s:
            await s.execute(
                update(Conversation)
                .where(Conversation.id == ref.id, column < seq, Conversation.last_seq >= seq)
                .values({column: seq})
            )
        frame = {"type": "seen", "conversation": ref.id, "role": role, "seq": seq}
        await self.broker.publish(Event(recipients.for_signal_from(role, ref.id), frame))

    async def typing(self, actor: Actor, ref: ConversationRef, typing: bool, origin: str) -> None:
        role = "agent" if isinstance(actor, Principal) else "visitor"
        frame = {"type": "typing", "conversation": ref.id, "role": role, "typing": typing}
        await self.broker.publish(Event(recipients.for_signal_from(role, ref.id), frame, origin))

    # --- agents' views ----------------------------------------------------------------------

    async def agent_conversations(self, agent: Principal) -> list[ConversationView]:
        async with self.db.session(agent.scope, read_only=True) as s:
            return await queries.agent_queue(s, agent.user_id, agent.site_ids)

    async def view(self, agent: Principal, conversation_id: str) -> ConversationView:
        async with self.db.session(agent.scope, read_only=True) as s:
            view = await queries.conversation_view(s, conversation_id)
        if view is None:
            raise NotFound("No such conversation.")
        return view

    async def transcript(
        self, agent: Principal, conversation_id: str
    ) -> tuple[ConversationView, list[MessageView]]:
        async with self.db.session(agent.scope, read_only=True) as s:
            view = await queries.conversation_view(s, conversation_id)
            if view is None:
                raise NotFound("No such conversation.")
            messages: list[MessageView] = []
            after = 0
            while True:
                page = await queries.messages_after(s, conversation_id, after)
                messages.extend(page)
                if len(page) < queries.HISTORY_PAGE:
                    break
                after = page[-1].seq
        await AuditLog(self.db).record(
            AuditActor.of(agent),
            "transcript.view",
            organisation_id=view.organisation_id,
            subject_kind="conversation",
            subject_ref=view.id,
            fields=["messages", "visitor_name", "visitor_contact"],
            purpose="conversation transcript",
        )
        return view, messages

    async def search(
        self, agent: Principal, *, q: str, site_id: str | None, page: int
    ) -> tuple[list[queries.SearchHit], bool]:
        q = q.strip()[:200]
        async with self.db.session(agent.scope, read_only=True) as s:
            hits, more = await queries.search(s, q=q, site_id=site_id, page=max(page, 0))
        # Names, contacts and message snippets were read: one entry per organisation shown, the
        # query itself left out (it may be the email address searched for).
        shown: dict[str, list[str]] = {}
        for hit in hits:
            shown.setdefault(hit.view.organisation_id, []).append(hit.view.id)
        log = AuditLog(self.db)
        for org_id, ids in shown.items():
            await log.record(
                AuditActor.of(agent),
                "conversation.search" if q else "conversation.list",
                organisation_id=org_id,
                subject_kind="conversations",
                subject_ref=ids[0] if len(ids) == 1 else None,
                fields=["visitor_name", "visitor_contact", "messages"],
                purpose=f"chat history: {len(ids)} conversation(s) listed",
            )
        return hits, more

    async def publish_change(self, view: ConversationView) -> None:
        """Tell agents and the visitor a conversation's new state (also for a change made
        outside this service: idle chats closed on a schedule, chat/idle.py)."""
        agents = {"type": "conversation", "conversation": view.for_agents()}
        await self.broker.publish(
            Event(recipients.for_conversation_change_agents(view.id, view.site_id), agents)
        )
        visitor = {"type": "conversation", "conversation": view.for_visitor()}
        await self.broker.publish(
            Event(recipients.for_conversation_change_visitor(view.id), visitor)
        )


def _new_conversation(
    site: Site,
    visitor_id: str,
    source: str,
    now: object,
    *,
    name: str | None = None,
    contact: str | None = None,
) -> Conversation:
    return Conversation(
        id=new_id(),
        organisation_id=site.organisation_id,
        site_id=site.id,
        visitor_id=visitor_id,
        source=source,
        state=State.WAITING.value,
        operator_id=None,
        visitor_name=name,
        visitor_contact=contact,
        last_seq=0,
        visitor_seen_seq=0,
        agent_seen_seq=0,
        created_at=now,
        updated_at=now,
    )


async def _person_of_browser(s: AsyncSession, visit_id: str) -> str | None:
    """The person this browser last gave details as on this site, found through the tracking
    cookie's visitor (only set with consent), when a returning visitor starts a new chat (R24).
    Browsing alone never does this: the live list shows no person."""
    browser = select(Visit.site_visitor_id).where(Visit.id == visit_id).scalar_subquery()
    return await s.scalar(  # type: ignore[no-any-return]
        select(Visit.person_id)
        .where(
            Visit.site_visitor_id == browser,
            Visit.person_id.is_not(None),
            Visit.id != visit_id,
        )
        .order_by(Visit.started_at.desc())
        .limit(1)
    )
