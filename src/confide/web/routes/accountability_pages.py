"""Pages of the accountability records: the portal's record of processing and inbox, and the
public newsletter and policy pages.

Portal pages are for a client's staff (their own organisation) and our admins (who choose one);
they work without JavaScript, and forms POST with the session's CSRF token, then redirect.

The newsletter pages need no account. The confirmation and unsubscribe links carry their token:
a GET shows a page with one button (a mail scanner that fetches links changes nothing), and a
POST acts. ``POST /newsletter/unsubscribe?token=…`` is also the RFC 8058 one-click target that
mail clients call with ``List-Unsubscribe=One-Click``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from confide.accountability.breaches import NOTIFY_TARGET
from confide.accountability.service import Accountability
from confide.accounts.models import Role
from confide.accounts.principal import Principal
from confide.errors import ConfideError, Forbidden
from confide.ids import new_secret
from confide.web.deps import Ctx, tokens_match
from confide.web.errors import TITLES, status_for
from confide.web.routes.console import _page, _signed_in
from confide.web.routes.portal import _check_role, _error
from confide.web.routes.widget import public_base
from confide.web.security import secure_cookie
from confide.web.signin_redirect import to_sign_in
from confide.web.throttle import limited

router = APIRouter(include_in_schema=False)

NEWSLETTER_CSRF = "confide_newsletter_csrf"
#: What a page says after a redirect-after-POST (``?done=…``); never text from the URL.
DONE = {"objected": "Your objection is recorded. The Confide team will contact you about it."}
TokenQuery = Annotated[str, Query(max_length=100)]


def _acct(ctx: Ctx) -> Accountability:
    return Accountability(ctx.db, ctx.settings)


def _at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


async def _session(request: Request, ctx: Ctx) -> tuple[Principal, str] | Response:
    """The signed-in client or admin, or the response to send instead (sign-in, 403 page)."""
    session = await _signed_in(request, ctx)
    if session is None:
        return to_sign_in(request)
    try:
        _check_role(session[0])
    except ConfideError as exc:
        return _error(request, exc)
    return session


async def _organisation(
    ctx: Ctx, principal: Principal, requested: str
) -> tuple[str | None, list[dict[str, str]]]:
    """The organisation a page shows: a client's own; for our admins the one asked for (or the
    first), with the list to choose from."""
    if principal.role is not Role.ADMIN:
        return principal.organisation_id, []
    orgs = [
        {"id": o.id, "name": o.name}
        for o in await ctx.accounts.list_organisations(principal.scope)
        if o.purged_at is None
    ]
    if requested:
        return requested, orgs
    return (orgs[0]["id"] if orgs else None), orgs


# ---- the record of processing ----------------------------------------------------------------


def _ropa_view(record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    out["generated"] = _at(record["generated_at"])
    out["purpose_labels"] = {p["purpose"]: p["label"] for p in record["purposes"]}
    controller = record["controller"]
    out["controller"] = {
        **controller,
        "start": date.fromisoformat(controller["contract_start"])
        if controller["contract_start"]
        else None,
        "end": date.fromisoformat(controller["contract_end"])
        if controller["contract_end"]
        else None,
    }
    latest = record["retention"]["latest_deletion"]
    out["latest_deletion"] = date.fromisoformat(latest) if latest else None
    out["subprocessors"] = [
        {**sp, "effective": _at(sp["effective_at"]), "objected": _at(sp["objected_at"])}
        for sp in record["subprocessors"]
    ]
    return out


@router.get("/portal/ropa", response_class=HTMLResponse)
async def ropa_page(
    request: Request,
    ctx: Ctx,
    org: Annotated[str, Query(max_length=64)] = "",
    done: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    session = await _session(request, ctx)
    if isinstance(session, Response):
        return session
    principal, csrf = session
    organisation_id, choices = await _organisation(ctx, principal, org)
    record = None
    if organisation_id is not None:
        try:
            record = await _acct(ctx).ropa.for_organisation(principal, organisation_id)
        except ConfideError as exc:
            return _error(request, exc, back="/portal/ropa")
    return _page(
        request,
        "portal/ropa.html",
        {
            "user": principal,
            "csrf_token": csrf,
            "record": _ropa_view(record) if record else None,
            "choices": choices,
            "can_object": principal.role is Role.CLIENT,
            "notice": DONE.get(done),
            "error": None,
        },
    )


@router.post("/portal/ropa/objections", response_class=HTMLResponse)
async def object_page(
    request: Request,
    ctx: Ctx,
    subprocessor_id: Annotated[str, Form(max_length=64)] = "",
    reason: Annotated[str, Form(max_length=4000)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    session = await _session(request, ctx)
    if isinstance(session, Response):
        return session
    principal, csrf = session
    if not tokens_match(csrf, csrf_token):
        return _error(request, Forbidden("This form had expired. Please try again."))
    acct = _acct(ctx)
    try:
        await acct.subprocessors.object(
            principal, principal.organisation_id or "", subprocessor_id, reason
        )
    except ConfideError as exc:
        if status_for(exc) not in (409, 422):
            return _error(request, exc, back="/portal/ropa")
        assert principal.organisation_id is not None
        record = await acct.ropa.for_organisation(principal, principal.organisation_id)
        return _page(
            request,
            "portal/ropa.html",
            {
                "user": principal,
                "csrf_token": csrf,
                "record": _ropa_view(record),
                "choices": [],
                "can_object": True,
                "notice": None,
                "error": {"subprocessor_id": subprocessor_id, "message": exc.message},
                "reason": reason,
            },
            status=status_for(exc),
        )
    return RedirectResponse("/portal/ropa?done=objected#subprocessors", status_code=303)


# ---- the inbox -------------------------------------------------------------------------------

KIND_LABELS = {"subprocessor": "Sub-processor", "breach": "Breach notice", "policy": "Policy"}


@router.get("/portal/inbox", response_class=HTMLResponse)
async def inbox_page(
    request: Request, ctx: Ctx, org: Annotated[str, Query(max_length=64)] = ""
) -> Response:
    session = await _session(request, ctx)
    if isinstance(session, Response):
        return session
    principal, csrf = session
    organisation_id, choices = await _organisation(ctx, principal, org)
    items: list[Any] = []
    if organisation_id is not None:
        try:
            items = await _acct(ctx).inbox.messages(principal, organisation_id)
        except ConfideError as exc:
            return _error(request, exc, back="/portal/inbox")
    return _page(
        request,
        "portal/inbox.html",
        {
            "user": principal,
            "csrf_token": csrf,
            "items": items,
            "unread": sum(1 for i in items if i.read_at is None),
            "kind_labels": KIND_LABELS,
            "choices": choices,
            "organisation_id": organisation_id,
            "target_hours": int(NOTIFY_TARGET.total_seconds() // 3600),
        },
    )


# ---- public pages: the newsletter and the policy ------------------------------------------------


def _public(
    request: Request,
    template: str,
    context: dict[str, Any],
    status: int = 200,
) -> Response:
    context.setdefault("csp_nonce", request.state.csp_nonce)
    response: Response = request.app.state.templates.TemplateResponse(
        request, f"accountability/{template}", context, status_code=status
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the token must not leak in a Referer
    return response


def _public_error(request: Request, exc: ConfideError) -> Response:
    status = status_for(exc)
    return _public(
        request,
        "error.html",
        {"status": status, "title": TITLES.get(status, "Error"), "detail": exc.message},
        status,
    )


def _subscribe_form(
    request: Request, ctx: Ctx, *, error: str | None, email: str, status: int = 200
) -> Response:
    csrf = new_secret()
    response = _public(
        request, "subscribe.html", {"csrf_token": csrf, "error": error, "email": email}, status
    )
    response.set_cookie(
        NEWSLETTER_CSRF,
        csrf,
        httponly=True,
        samesite="strict",
        secure=secure_cookie(request, ctx.settings),
        path="/newsletter",
    )
    return response


@router.get("/newsletter", response_class=HTMLResponse)
async def subscribe_form(request: Request, ctx: Ctx) -> Response:
    return _subscribe_form(request, ctx, error=None, email="")


@router.post(
    "/newsletter/subscribe", response_class=HTMLResponse, dependencies=[limited("newsletter")]
)
async def subscribe(
    request: Request,
    ctx: Ctx,
    email: Annotated[str, Form(max_length=320)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    expected = request.cookies.get(NEWSLETTER_CSRF, "")
    if not tokens_match(expected, csrf_token):
        return _subscribe_form(
            request, ctx, error="This form had expired. Please try again.", email="", status=403
        )
    try:
        await _acct(ctx).newsletter.subscribe(email, base_url=public_base(request, ctx))
    except ConfideError as exc:
        return _subscribe_form(request, ctx, error=exc.message, email=email, status=status_for(exc))
    return _public(request, "check_inbox.html", {})


@router.get("/newsletter/confirm", response_class=HTMLResponse)
async def confirm_page(request: Request, ctx: Ctx, token: TokenQuery = "") -> Response:
    try:
        sub = await _acct(ctx).newsletter.by_confirm_token(token)
    except ConfideError as exc:
        return _public_error(request, exc)
    return _public(
        request,
        "confirm.html",
        {"sub": sub, "action": "/newsletter/confirm?" + urlencode({"token": token}), "done": False},
    )


@router.post("/newsletter/confirm", response_class=HTMLResponse)
async def confirm(request: Request, ctx: Ctx, token: TokenQuery = "") -> Response:
    try:
        sub = await _acct(ctx).newsletter.confirm(token)
    except ConfideError as exc:
        return _public_error(request, exc)
    return _public(request, "confirm.html", {"sub": sub, "action": "", "done": True})


@router.get("/newsletter/unsubscribe", response_class=HTMLResponse)
async def unsubscribe_page(request: Request, ctx: Ctx, token: TokenQuery = "") -> Response:
    try:
        sub = await _acct(ctx).newsletter.by_unsubscribe_token(token)
    except ConfideError as exc:
        return _public_error(request, exc)
    return _public(
        request,
        "unsubscribe.html",
        {
            "sub": sub,
            "action": "/newsletter/unsubscribe?" + urlencode({"token": token}),
            "done": sub.state == "unsubscribed",
        },
    )


@router.post("/newsletter/unsubscribe", response_class=HTMLResponse)
async def unsubscribe(request: Request, ctx: Ctx, token: TokenQuery = "") -> Response:
    """The one-click target (RFC 8058): the token in the URL is all it needs, no session."""
    try:
        sub = await _acct(ctx).newsletter.unsubscribe(token)
    except ConfideError as exc:
        return _public_error(request, exc)
    return _public(request, "unsubscribe.html", {"sub": sub, "action": "", "done": True})


@router.get("/policy", response_class=HTMLResponse)
async def policy_latest(request: Request, ctx: Ctx) -> Response:
    acct = _acct(ctx)
    try:
        policy = await acct.policies.latest()
    except ConfideError as exc:
        return _public_error(request, exc)
    return await _policy_page(request, acct, policy)


@router.get("/policy/{version}", response_class=HTMLResponse)
async def policy_version(request: Request, ctx: Ctx, version: str) -> Response:
    acct = _acct(ctx)
    try:
        policy = await acct.policies.get(version)
    except ConfideError as exc:
        return _public_error(request, exc)
    return await _policy_page(request, acct, policy)


async def _policy_page(request: Request, acct: Accountability, policy: dict[str, Any]) -> Response:
    versions = await acct.policies.versions()
    return _public(
        request,
        "policy.html",
        {
            "policy": {**policy, "published": _at(policy["published_at"])},
            "versions": [{**v, "published": _at(v["published_at"])} for v in versions],
            "latest": versions[0]["version"] if versions else None,
        },
    )
