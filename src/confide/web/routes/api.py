"""The JSON API under /api/ (OpenAPI at /openapi.json). Thin: authenticate, parse, call, return."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from confide.chat.views import ConversationView, iso
from confide.errors import Forbidden
from confide.web.deps import CsrfPrincipal, Ctx, CurrentPrincipal

router = APIRouter(prefix="/api", tags=["console"])


class Me(BaseModel):
    id: str
    name: str
    email: str
    role: str
    organisation_id: str | None
    site_ids: list[str]


@router.get("/me", summary="The signed-in user")
async def me(principal: CurrentPrincipal) -> Me:
    return Me(
        id=principal.user_id,
        name=principal.name,
        email=principal.email,
        role=principal.role.value,
        organisation_id=principal.organisation_id,
        site_ids=sorted(principal.site_ids),
    )


class SiteOut(BaseModel):
    id: str
    key: str
    name: str
    greeting: str
    organisation_id: str
    organisation_name: str
    allowed_origins: list[str]


@router.get("/sites", summary="Sites you can see")
async def list_sites(ctx: Ctx, principal: CurrentPrincipal) -> list[SiteOut]:
    return [
        SiteOut(
            id=s.id,
            key=s.key,
            name=s.name,
            greeting=s.greeting,
            organisation_id=s.organisation_id,
            organisation_name=org,
            allowed_origins=s.allowed_origins,
        )
        for s, org in await ctx.sites.list_sites(principal.scope)
    ]


@router.get("/sites/{site_id}", summary="One site")
async def get_site(ctx: Ctx, principal: CurrentPrincipal, site_id: str) -> SiteOut:
    site = await ctx.sites.get(principal.scope, site_id)
    org = await ctx.accounts.get_organisation(principal.scope, site.organisation_id)
    return SiteOut(
        id=site.id,
        key=site.key,
        name=site.name,
        greeting=site.greeting,
        organisation_id=site.organisation_id,
        organisation_name=org.name,
        allowed_origins=site.allowed_origins,
    )


class OrganisationOut(BaseModel):
    id: str
    name: str


@router.get("/organisations", summary="Organisations you can see")
async def list_organisations(ctx: Ctx, principal: CurrentPrincipal) -> list[OrganisationOut]:
    return [
        OrganisationOut(id=o.id, name=o.name)
        for o in await ctx.accounts.list_organisations(principal.scope)
    ]


@router.get("/organisations/{organisation_id}", summary="One organisation")
async def get_organisation(
    ctx: Ctx, principal: CurrentPrincipal, organisation_id: str
) -> OrganisationOut:
    org = await ctx.accounts.get_organisation(principal.scope, organisation_id)
    return OrganisationOut(id=org.id, name=org.name)


def _conversation(view: ConversationView) -> dict[str, Any]:
    return view.for_agents()


class ConversationPage(BaseModel):
    conversations: list[dict[str, Any]]
    page: int
    has_next: bool


@router.get("/conversations", summary="Search conversations")
async def search_conversations(
    ctx: Ctx,
    principal: CurrentPrincipal,
    q: Annotated[str, Query(max_length=200)] = "",
    site: Annotated[str | None, Query(max_length=64)] = None,
    page: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> ConversationPage:
    hits, has_next = await ctx.chat.search(principal, q=q, site_id=site, page=page)
    return ConversationPage(
        conversations=[
            {**_conversation(h.view), "message_count": h.message_count, "snippet": h.snippet}
            for h in hits
        ],
        page=page,
        has_next=has_next,
    )


class Transcript(BaseModel):
    conversation: dict[str, Any]
    messages: list[dict[str, Any]]


@router.get("/conversations/{conversation_id}", summary="A conversation with its transcript")
async def get_conversation(
    ctx: Ctx, principal: CurrentPrincipal, conversation_id: str
) -> Transcript:
    view, messages = await ctx.chat.transcript(principal, conversation_id)
    return Transcript(
        conversation=_conversation(view),
        messages=[
            {
                "seq": m.seq,
                "author": {"role": m.author_role, "name": m.author_name},
                "text": m.text,
                "at": iso(m.created_at),
            }
            for m in messages
        ],
    )


@router.post("/conversations/{conversation_id}/close", summary="Close a conversation")
async def close_conversation(
    ctx: Ctx, principal: CsrfPrincipal, conversation_id: str
) -> dict[str, Any]:
    ref = await ctx.chat.authorise(principal, conversation_id)
    return _conversation(await ctx.chat.close(principal, ref))


@router.post("/conversations/{conversation_id}/accept", summary="Accept a waiting conversation")
async def accept_conversation(
    ctx: Ctx, principal: CsrfPrincipal, conversation_id: str
) -> dict[str, Any]:
    ref = await ctx.chat.authorise(principal, conversation_id)
    if ref.site_id not in principal.site_ids and not principal.scope.unrestricted:
        raise Forbidden("You do not answer this site's chats.")
    return _conversation(await ctx.chat.accept(principal, ref))
