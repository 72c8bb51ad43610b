"""The two WebSocket endpoints: thin adapters from frames to chat service calls."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.websockets import WebSocket

from confide.accounts.principal import Principal
from confide.chat import recipients
from confide.chat.service import ConversationRef, VisitorActor
from confide.chat.views import iso
from confide.chat.writer import Stored
from confide.clock import utcnow
from confide.errors import AuthenticationFailed, NotFound
from confide.realtime.protocol import VERSION, Frame, ProtocolError
from confide.realtime.ratelimit import TokenBucket
from confide.sites.models import Site
from confide.tracking.geo import truncate as truncate_ip
from confide.tracking.useragent import reduce as reduce_agent
from confide.web.context import AppContext
from confide.web.ws.connection import Connection

CLOSE_UNAUTHORISED = 4401
CLOSE_ORIGIN = 4403
CLOSE_UNKNOWN_SITE = 4404
CLOSE_VERSION = 4400


def own_origin(ws: WebSocket, ctx: AppContext) -> str:
    if ctx.settings.public_url:
        return ctx.settings.public_url.rstrip("/")
    scheme = "https" if ws.url.scheme == "wss" else "http"
    return f"{scheme}://{ws.headers.get('host', '')}"


async def _refuse(ws: WebSocket, code: int) -> None:
    await ws.accept()
    await ws.close(code)


class _Session:
    """State shared by both audiences: authorised conversations and the last hello."""

    def __init__(self, ctx: AppContext, conn: Connection) -> None:
        self.ctx = ctx
        self.conn = conn
        self.greeted = False
        self.visitor: VisitorActor | None = None
        self.refs: dict[str, ConversationRef] = {}
        #: The browser sends Global Privacy Control (header or navigator signal).
        self.gpc = False
        #: This socket's newest ``send`` not yet committed (acks come from its callback).
        self.last_send: asyncio.Future[Stored] | None = None

    async def ref(self, actor: VisitorActor | Principal, conversation_id: str) -> ConversationRef:
        ref = self.refs.get(conversation_id)
        if ref is None:
            ref = await self.ctx.chat.authorise(actor, conversation_id)
            self.refs[conversation_id] = ref
        return ref

    async def common(self, actor: VisitorActor | Principal, frame: Frame) -> bool:
        """Frames both audiences share; False if ``frame`` is not one of them."""
        chat, data, conn = self.ctx.chat, frame.data, self.conn
        if frame.type == "ping":
            conn.send({"type": "pong", "at": iso(utcnow())})
            return True
        if frame.type not in ("send", "typing"):
            # Every other frame acts after this socket's messages are stored: a "close" or a
            # "sync" right behind a "send" must see it (the writer commits in arrival order).
            last = self.last_send
            if last is not None and not last.done():
                await asyncio.wait((last,))
        if frame.type not in ("send", "typing", "seen", "sync", "close"):
            return False
        ref = await self.ref(actor, data["conversation"])
        if frame.type == "send":
            client_id = data["client_id"]
            stored = chat.submit(actor, ref, client_id, data["text"], conn.id)
            stored.add_done_callback(lambda done: self._acked(done, frame.ref, client_id))
            self.last_send = stored
        elif frame.type == "typing":
            await chat.typing(actor, ref, data["typing"], conn.id)
        elif frame.type == "seen":
            await chat.seen(actor, ref, data["seq"])
        elif frame.type == "sync":
            await self.send_history(actor, ref, data["after"], frame.ref)
        else:
            view = await chat.close(actor, ref)
            body = view.for_agents() if isinstance(actor, Principal) else view.for_visitor()
            reply: dict[str, Any] = {"type": "conversation", "conversation": body}
            if frame.ref:
                reply["ref"] = frame.ref
            conn.send(reply)
        return True

    def _acked(self, done: asyncio.Future[Stored], fref: str | None, client_id: str) -> None:
        """Answer a ``send`` once its commit is decided: the ``ack``, or an error naming it."""
        exc = done.exception()
        if exc is None:
            self.conn.send(self.ctx.chat.ack(done.result(), fref))
        else:
            self.conn.fail(exc, "send", fref, client_id)

    async def send_history(
        self, actor: VisitorActor | Principal, ref: ConversationRef, after: int, fref: str | None
    ) -> None:
        page = await self.ctx.chat.history(actor, ref, after)
        reply: dict[str, Any] = {
            "type": "history",
            "conversation": ref.id,
            "messages": [m.frame(ref.id) for m in page.messages],
            "last_seq": page.last_seq,
        }
        if isinstance(actor, Principal):
            reply["agent_seen_seq"] = page.agent_seen_seq
        if fref:
            reply["ref"] = fref
        self.conn.send(reply)


def _check_hello(session: _Session, frame: Frame) -> None:
    if not session.greeted and frame.type != "hello":
        raise ProtocolError("hello_required", "Send hello first.")
    if session.greeted and frame.type == "hello":
        raise ProtocolError("bad_frame", "hello was already received.")
    if frame.type == "hello" and frame.data["v"] != VERSION:
        raise ProtocolError("unsupported_version", f"This server speaks protocol v{VERSION}.")


async def widget_socket(ws: WebSocket) -> None:
    ctx: AppContext = ws.app.state.ctx
    if ws.query_params.get("v", "1") != "1":
        return await _refuse(ws, CLOSE_VERSION)
    try:
        site = await ctx.sites.by_key(ws.query_params.get("site", ""))
    except NotFound:
        return await _refuse(ws, CLOSE_UNKNOWN_SITE)
    origin = ws.headers.get("origin")
    from_frame = origin == own_origin(ws, ctx)
    if not from_frame and not ctx.sites.origin_allowed(site, origin):
        return await _refuse(ws, CLOSE_ORIGIN)
    await ws.accept()
    conn = Connection(ws, TokenBucket(ctx.settings.widget_rate, ctx.settings.widget_burst))
    session = _Session(ctx, conn)

    async def handle(frame: Frame) -> None:
        _check_hello(session, frame)
        if frame.type == "hello":
            if from_frame and not ctx.sites.origin_allowed(site, frame.data.get("host")):
                raise ProtocolError("origin_not_allowed", "This page may not embed the chat.")
            await _widget_hello(session, site, frame, conn)
            session.greeted = True  # only now: a failed hello may be retried ("internal")
            return
        if frame.type == "open":
            actor, view, token = await ctx.chat.open_conversation(
                site,
                session.visitor,
                frame.data.get("name"),
                frame.data.get("visit"),
                gpc=session.gpc,
            )
            session.visitor = actor
            session.refs[view.id] = ConversationRef(
                view.id, view.organisation_id, view.site_id, view.visitor_id
            )
            ctx.hub.subscribe(conn, recipients.conversation_visitor(view.id))
            reply: dict[str, Any] = {"type": "conversation", "conversation": view.for_visitor()}
            if token:
                reply["token"] = token
            if frame.ref:
                reply["ref"] = frame.ref
            conn.send(reply)
            await _send_consent(session, view.id)
            return
        if frame.type == "ping":
            conn.send({"type": "pong", "at": iso(utcnow())})
            return
        if session.visitor is None:
            raise NotFound("No such conversation.")
        if not await session.common(session.visitor, frame):
            await _widget_lead_frame(session, ws, frame, site)

    try:
        await conn.run(handle, "widget")
    finally:
        ctx.hub.drop(conn)


async def _send_consent(session: _Session, conversation_id: str) -> None:
    """After (re)joining a conversation the widget learns the open consent question, if any."""
    state = await session.ctx.leads.consent_state(conversation_id)
    if state.request_id is not None:
        session.conn.send(state.frame(conversation_id))


async def _widget_lead_frame(session: _Session, ws: WebSocket, frame: Frame, site: Site) -> None:
    """consent, rate and details: the visitor's side of lead capture; transcript: a copy of
    the chat by email."""
    ctx, data, visitor = session.ctx, frame.data, session.visitor
    assert visitor is not None
    ref = await session.ref(visitor, data["conversation"])
    reply: dict[str, Any]
    if frame.type == "consent":
        agent = reduce_agent(ws.headers.get("user-agent", ""))
        state = await ctx.leads.answer_consent(
            visitor,
            ref.id,
            data["request"],
            data["answer"],
            ip_truncated=truncate_ip(ws.client.host) if ws.client else None,
            user_agent=f"{agent.browser} {agent.browser_major or ''} / {agent.os}".strip(),
            language=(ws.headers.get("accept-language") or "en").split(",")[0].strip() or "en",
        )
        reply = state.frame(ref.id)
    elif frame.type == "rate":
        view = await ctx.chat.rate(visitor, ref, data["score"], data.get("comment"))
        reply = {"type": "conversation", "conversation": view.for_visitor()}
    elif frame.type == "transcript":
        await ctx.transcripts.send(visitor, ref, data["email"], site.name)
        reply = {"type": "transcript_sent", "conversation": ref.id}
    else:
        values = {k: v for k, v in data.items() if k != "conversation"}
        await ctx.leads.update_details(visitor, ref.id, values, source="widget")
        reply = {"type": "details_saved", "conversation": ref.id}
    if frame.ref:
        reply["ref"] = frame.ref
    session.conn.send(reply)


async def _widget_hello(session: _Session, site: Site, frame: Frame, conn: Connection) -> None:
    ctx = session.ctx
    signals = frame.data.get("signals") or {}
    session.gpc = bool(signals.get("gpc")) or conn.ws.headers.get("sec-gpc") == "1"
    actor, view = await ctx.chat.resume_visitor(site, frame.data.get("token"), gpc=session.gpc)
    session.visitor = actor
    ctx.hub.subscribe(conn, recipients.site_visitors(site.id))
    if view is not None:
        session.refs[view.id] = ConversationRef(
            view.id, view.organisation_id, view.site_id, view.visitor_id
        )
        ctx.hub.subscribe(conn, recipients.conversation_visitor(view.id))
    conn.send(
        {
            "type": "welcome",
            "v": VERSION,
            "role": "visitor",
            "token": frame.data.get("token") if actor is not None else None,
            "site": {
                "name": site.name,
                "greeting": site.greeting,
                "online": await ctx.site_online(site.id),
            },
            "conversation": view.for_visitor() if view is not None else None,
        }
    )
    if view is not None:
        await _send_consent(session, view.id)


async def console_socket(ws: WebSocket) -> None:
    ctx: AppContext = ws.app.state.ctx
    if ws.query_params.get("v", "1") != "1":
        return await _refuse(ws, CLOSE_VERSION)
    if ws.headers.get("origin") != own_origin(ws, ctx):
        return await _refuse(ws, CLOSE_ORIGIN)
    try:
        principal, _csrf = await ctx.accounts.session_principal(
            ws.cookies.get("confide_session", "")
        )
    except AuthenticationFailed:
        return await _refuse(ws, CLOSE_UNAUTHORISED)
    await ws.accept()
    conn = Connection(ws, TokenBucket(ctx.settings.console_rate, ctx.settings.console_burst))
    session = _Session(ctx, conn)
    arrived = False

    async def handle(frame: Frame) -> None:
        nonlocal arrived
        _check_hello(session, frame)
        chat, data = ctx.chat, frame.data
        if frame.type == "hello":
            for site_id in principal.site_ids:
                ctx.hub.subscribe(conn, recipients.site_agents(site_id))
            views = await chat.agent_conversations(principal)
            for v in views:
                if v.state == "active":
                    ctx.hub.subscribe(conn, recipients.conversation_agents(v.id))
            sites = await ctx.sites.list_sites(principal.scope)
            visitors = await ctx.tracking.live_visitors(principal.scope, principal.site_ids)
            if not arrived:
                # Before the welcome: a console that says "Connected" is online for visitors
                # on every node (the presence is in Redis by then).
                arrived = True
                await ctx.agent_arrived(principal.site_ids)
            conn.send(
                {
                    "type": "welcome",
                    "v": VERSION,
                    "role": principal.role.value,
                    "user": {
                        "id": principal.user_id,
                        "name": principal.name,
                        "role": principal.role.value,
                    },
                    "sites": [
                        {
                            "id": s.id,
                            "name": s.name,
                            "organisation": org,
                            "organisation_id": s.organisation_id,
                        }
                        for s, org in sites
                        if s.id in principal.site_ids
                    ],
                    "conversations": [v.for_agents() for v in views],
                    "visitors": visitors,
                }
            )
            session.greeted = True  # only now: a failed hello may be retried ("internal")
            return
        if await session.common(principal, frame):
            return
        if frame.type == "invite":
            await ctx.tracking.invite(
                principal.scope,
                principal.site_ids,
                data["visit"],
                data.get("text", ""),
                principal.name,
            )
            invited: dict[str, Any] = {"type": "invited", "visit": data["visit"]}
            if frame.ref:
                invited["ref"] = frame.ref
            conn.send(invited)
            return
        ref = await session.ref(principal, data["conversation"])
        if frame.type == "join":
            ctx.hub.subscribe(conn, recipients.conversation_agents(ref.id))
            view = await chat.view(principal, ref.id)
            reply: dict[str, Any] = {"type": "conversation", "conversation": view.for_agents()}
            conn.send(reply)
            await session.send_history(principal, ref, data.get("after", 0), frame.ref)
        elif frame.type == "leave":
            ctx.hub.unsubscribe(conn, recipients.conversation_agents(ref.id))
        elif frame.type == "accept":
            ctx.hub.subscribe(conn, recipients.conversation_agents(ref.id))
            view = await chat.accept(principal, ref)
            reply = {"type": "conversation", "conversation": view.for_agents()}
            if frame.ref:
                reply["ref"] = frame.ref
            conn.send(reply)

    try:
        await conn.run(handle, "console")
    finally:
        ctx.hub.drop(conn)
        if arrived:
            await ctx.agent_left(principal.site_ids)
