"""What the host page and the widget iframe load: the loader, the frame page, the offline form."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import BaseModel, Field

from confide.errors import Forbidden, InvalidInput
from confide.sites import uk_stats
from confide.tracking.geo import truncate as truncate_ip
from confide.tracking.useragent import reduce as reduce_agent
from confide.web.deps import Ctx
from confide.web.throttle import limited

router = APIRouter()
STATIC = Path(__file__).resolve().parent.parent.parent / "static"


@router.get("/widget.js", include_in_schema=False)
async def loader() -> FileResponse:
    return FileResponse(
        STATIC / "widget" / "loader.js",
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
    )


def public_base(request: Request, ctx: Ctx) -> str:
    if ctx.settings.public_url:
        return ctx.settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


@router.get("/widget/frame", include_in_schema=False, response_class=HTMLResponse)
async def frame(request: Request, ctx: Ctx, site: Annotated[str, Query(max_length=64)]) -> Response:
    """The chat app's page, embedded only by the site's allowed origins (CSP frame-ancestors)."""
    s = await ctx.sites.by_key(site)
    base = public_base(request, ctx)
    ws_base = base.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    nonce = request.state.csp_nonce
    ancestors = " ".join(["'self'", *s.allowed_origins])
    response: Response = request.app.state.templates.TemplateResponse(
        request,
        "widget/frame.html",
        {
            "site_key": s.key,
            "site_name": s.name,
            "greeting": s.greeting,
            "ws_url": f"{ws_base}/ws/widget?v=1&site={s.key}",
            "static_url": "/static",
            "enquiry_url": "/api/widget/enquiry",
            "csp_nonce": nonce,
            # A browser may send the signals as request headers only (no navigator property):
            # the frame honours them too (R13, R19).
            "gpc": request.headers.get("sec-gpc") == "1",
            "dnt": request.headers.get("dnt") == "1",
        },
    )
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; "
        f"img-src 'self' data:; connect-src 'self' {ws_base}; frame-ancestors {ancestors}; "
        "base-uri 'none'; form-action 'self'"
    )
    response.headers["Cache-Control"] = "no-store"
    return response


class EnquiryIn(BaseModel):
    site: str = Field(max_length=64, description="The site key")
    host: str = Field(max_length=300, description="Origin of the page the visitor is on")
    name: str = Field(max_length=100)
    contact: str = Field(max_length=200, description="Email or phone number")
    message: str = Field(max_length=4000)
    consent: bool = Field(
        default=False, description="The visitor ticked the box to share their details"
    )
    consent_text: str | None = Field(
        default=None, max_length=1000, description="The exact label of that box, as shown"
    )


class EnquiryOut(BaseModel):
    conversation: str
    state: str
    #: A lead was created (held until consent when the box was not ticked).
    lead: bool = False


@router.post(
    "/api/widget/enquiry",
    status_code=201,
    tags=["widget"],
    summary="Leave a message",
    dependencies=[limited("enquiry")],
)
async def enquiry(request: Request, ctx: Ctx, body: EnquiryIn) -> EnquiryOut:
    """The offline form: stored as a conversation waiting for an agent."""
    site = await ctx.sites.by_key(body.site)
    origin = request.headers.get("origin")
    own = public_base(request, ctx)
    if not ctx.sites.origin_allowed(site, body.host) or (
        origin != own and not ctx.sites.origin_allowed(site, origin)
    ):
        raise Forbidden("This page may not send enquiries for this site.")
    if body.consent and not (body.consent_text or "").strip():
        raise InvalidInput("Send the consent box's label (consent_text) with consent.")
    view = await ctx.chat.enquiry(site, body.name, body.contact, body.message)
    agent = reduce_agent(request.headers.get("user-agent", ""))
    lead = await ctx.leads.from_enquiry(
        site,
        view.id,
        name=body.name,
        contact=body.contact,
        message=body.message,
        consent_text=body.consent_text if body.consent else None,
        ip_truncated=truncate_ip(request.client.host) if request.client else None,
        user_agent=f"{agent.browser} {agent.browser_major or ''} / {agent.os}",
    )
    return EnquiryOut(conversation=view.id, state=view.state, lead=lead is not None)


class WidgetConfig(BaseModel):
    name: str
    greeting: str
    online: bool
    consent_mode: str
    #: "cookie" or "cookieless": in cookieless mode the widget stores nothing for statistics.
    tracking_identity: str
    #: Anonymous counts before consent (the UK statistics exception is on and applies, R12).
    uk_stats: bool
    invite_rules: list[dict[str, object]]


@router.get("/api/widget/config", tags=["widget"], summary="The widget's public settings")
async def config(
    request: Request, response: Response, ctx: Ctx, site: Annotated[str, Query(max_length=64)]
) -> WidgetConfig:
    """Read by the loader on the host page (cross-origin): CORS for the site's origins only."""
    s = await ctx.sites.by_key(site)
    origin = request.headers.get("origin")
    if ctx.sites.origin_allowed(s, origin):
        response.headers["Access-Control-Allow-Origin"] = origin or ""
        response.headers["Vary"] = "Origin"
    return WidgetConfig(
        name=s.name,
        greeting=s.greeting,
        online=await ctx.site_online(s.id),
        consent_mode=s.consent_mode,
        tracking_identity=s.tracking_identity,
        uk_stats=uk_stats.applies(s),
        invite_rules=s.invite_rules,
    )
