"""The operator console's pages: sign-in, the live console, history, transcripts, deliveries."""

from __future__ import annotations

import functools
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from confide.accounts.models import Role
from confide.accounts.passwords import MAX_PASSWORD_LENGTH
from confide.accounts.principal import Principal
from confide.errors import AuthenticationFailed, Forbidden, LockedOut
from confide.ids import new_secret
from confide.web.deps import LOGIN_CSRF_COOKIE, SESSION_COOKIE, Ctx, tokens_match
from confide.web.routes.widget import public_base
from confide.web.security import secure_cookie
from confide.web.signin_redirect import after_sign_in, safe_next, to_sign_in
from confide.web.viewmodels import HistoryItem, SiteItem

router = APIRouter(prefix="/console", include_in_schema=False)


def _page(
    request: Request, template: str, context: dict[str, object], status: int = 200
) -> Response:
    context.setdefault("csp_nonce", request.state.csp_nonce)
    response: Response = request.app.state.templates.TemplateResponse(
        request, template, context, status_code=status
    )
    response.headers["Cache-Control"] = "no-store"
    return response


async def _signed_in(request: Request, ctx: Ctx) -> tuple[Principal, str] | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        return await ctx.accounts.session_principal(token)
    except AuthenticationFailed:
        return None


def _login_page(
    request: Request,
    ctx: Ctx,
    *,
    error: str | None,
    email: str,
    status: int,
    next_path: str | None = None,
) -> Response:
    csrf = new_secret()
    response = _page(
        request,
        "console/login.html",
        {"csrf_token": csrf, "error": error, "email": email, "next": safe_next(next_path)},
        status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        csrf,
        httponly=True,
        samesite="strict",
        secure=secure_cookie(request, ctx.settings),
        path="/console",
    )
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, ctx: Ctx, next: str | None = None) -> Response:
    session = await _signed_in(request, ctx)
    if session:
        return RedirectResponse(after_sign_in(session[0], next), status_code=303)
    return _login_page(request, ctx, error=None, email="", status=200, next_path=next)


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    ctx: Ctx,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=MAX_PASSWORD_LENGTH)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    again = functools.partial(_login_page, request, ctx, email=email, next_path=next)
    if not tokens_match(expected, csrf_token):
        return again(error="Your sign-in form expired. Please try again.", status=403)
    try:
        signed_in = await ctx.accounts.sign_in(email, password)
    except LockedOut:
        # The period, not the time left: the same words for an address without an account.
        minutes = ctx.settings.lockout_minutes
        wait = f"Too many failed sign-in attempts. Try again later (in {minutes} minutes)."
        return again(error=wait, status=429)
    except AuthenticationFailed as exc:
        return again(error=exc.message, status=401)
    response = RedirectResponse(after_sign_in(signed_in.principal, next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        signed_in.token,
        httponly=True,
        samesite="lax",
        secure=secure_cookie(request, ctx.settings),
        max_age=ctx.settings.session_hours * 3600,
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console")
    return response


@router.post("/logout")
async def logout(
    request: Request, ctx: Ctx, csrf_token: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    session = await _signed_in(request, ctx)
    if session is not None:
        if not tokens_match(session[1], csrf_token):
            raise Forbidden("Missing or wrong CSRF token.")
        await ctx.accounts.sign_out(request.cookies[SESSION_COOKIE])
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("", response_class=HTMLResponse)
async def console(request: Request, ctx: Ctx) -> Response:
    session = await _signed_in(request, ctx)
    if session is None:
        return to_sign_in(request)
    principal, csrf = session
    base = public_base(request, ctx)
    ws_base = base.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    sites = await ctx.sites.list_sites(principal.scope)
    return _page(
        request,
        "console/app.html",
        {
            "user": principal,
            "csrf_token": csrf,
            "sites": [
                SiteItem(s.id, s.name, org) for s, org in sites if s.id in principal.site_ids
            ],
            "ws_url": f"{ws_base}/ws/console?v=1",
        },
    )


@router.get("/history", response_class=HTMLResponse)
async def history(
    request: Request,
    ctx: Ctx,
    q: Annotated[str, Query(max_length=200)] = "",
    site: Annotated[str | None, Query(max_length=64)] = None,
    page: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> Response:
    session = await _signed_in(request, ctx)
    if session is None:
        return to_sign_in(request)
    principal, csrf = session
    hits, has_next = await ctx.chat.search(principal, q=q, site_id=site or None, page=page)
    sites = await ctx.sites.list_sites(principal.scope)
    return _page(
        request,
        "console/history.html",
        {
            "user": principal,
            "csrf_token": csrf,
            "conversations": [HistoryItem.of(h.view, h.message_count, h.snippet) for h in hits],
            "q": q,
            "site_id": site or None,
            "sites": [SiteItem(s.id, s.name, org) for s, org in sites],
            "page": page,
            "has_next": has_next,
        },
    )


@router.get("/deliveries", response_class=HTMLResponse)
async def deliveries(
    request: Request,
    ctx: Ctx,
    state: Annotated[str | None, Query(max_length=10)] = None,
) -> Response:
    """The page only: console-deliveries.js reads /api/deliveries and /api/destinations."""
    session = await _signed_in(request, ctx)
    if session is None:
        return to_sign_in(request)
    principal, csrf = session
    return _page(
        request,
        "console/deliveries.html",
        {
            "user": principal,
            "csrf_token": csrf,
            "state": "dead" if state == "dead" else None,
            "can_retry": principal.role is not Role.CLIENT,
        },
    )


@router.get("/conversations/{conversation_id}", response_class=HTMLResponse)
async def transcript(request: Request, ctx: Ctx, conversation_id: str) -> Response:
    session = await _signed_in(request, ctx)
    if session is None:
        return to_sign_in(request)
    principal, csrf = session
    view, messages = await ctx.chat.transcript(principal, conversation_id)
    item = HistoryItem.of(view, len(messages), None, messages)
    return _page(
        request,
        "console/transcript.html",
        {"user": principal, "csrf_token": csrf, "conversation": item},
    )
