"""The demo dealership pages (``confide demo``), embedding the widget like a client's site."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from confide.errors import NotFound
from confide.web.deps import Ctx
from confide.web.routes.widget import public_base

router = APIRouter(include_in_schema=False)

PAGES = {
    "": "demo/index.html",
    "used-cars": "demo/used-cars.html",
    "contact": "demo/contact.html",
    "east": "demo/east.html",
}


@router.get("/demo")
async def demo_root() -> RedirectResponse:
    return RedirectResponse("/demo/", status_code=308)


@router.get("/demo/{page:path}", response_class=HTMLResponse)
async def demo_page(request: Request, ctx: Ctx, page: str) -> Response:
    name = page.strip("/")
    template = PAGES.get(name)
    key = ctx.settings.demo_east_site_key if name == "east" else ctx.settings.demo_site_key
    if template is None or not key:
        raise NotFound("There is no such demo page.")
    base = public_base(request, ctx)
    nonce = request.state.csp_nonce
    response: Response = request.app.state.templates.TemplateResponse(
        request,
        template,
        {
            "site_key": key,
            "widget_src": f"{base}/widget.js",
            "csp_nonce": nonce,
        },
    )
    # Like a typical dealer site: inline styles allowed, scripts only from known places.
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self' {base} 'nonce-{nonce}'; "
        f"style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-src 'self' {base}; "
        f"connect-src 'self' {base}; "
        "frame-ancestors 'none'"
    )
    return response
