"""The client portal's leads: the list, one lead, its status and its onward transfers.

Server-rendered like the reports (:mod:`confide.web.routes.portal`): every page works without
JavaScript. Forms POST with the session's CSRF token and redirect back to the lead (so a reload
never repeats them); a refused change renders the lead again with the reason and the typed
values. Reads and changes all go through :class:`~confide.leads.records.LeadRecords`, in the
signed-in user's scope: a client sees only the leads a visitor released to them with consent,
and a lead of another organisation is a 404 page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from confide.accounts.principal import Principal
from confide.clock import utcnow
from confide.errors import ConfideError, InvalidInput, NotFound
from confide.leads.records import STATUSES, TRANSITIONS
from confide.web.deps import Ctx, tokens_match
from confide.web.errors import status_for
from confide.web.routes.console import _page, _signed_in
from confide.web.routes.portal import _check_role, _error, duration, key_label, slug
from confide.web.signin_redirect import to_sign_in

router = APIRouter(prefix="/portal", include_in_schema=False)

STATUS_LABELS = {"new": "New", "contacted": "Contacted", "closed": "Closed"}
#: The buttons on a lead, in the order of the workflow (TRANSITIONS says which are shown).
ACTIONS = (("contacted", "Mark as contacted"), ("closed", "Close lead"), ("new", "Reopen as new"))
SOURCES = {
    "operator": "Operator",
    "visitor": "Visitor",
    "widget": "Visitor, in the chat",
    "form": "Enquiry form",
    "redaction": "Redaction",
}
JOB_STATES = {
    "pending": "Queued",
    "running": "Sending",
    "done": "Delivered",
    "dead": "Failed",
    "canceled": "Cancelled",
}
OUTCOMES = {"delivered": "Delivered", "retry": "Failed, will retry", "dead": "Failed"}
#: What the lead page says after a redirect-after-POST (``?done=…``); never text from the URL.
DONE = {"forwarded": "The transfer is recorded below."}
#: Form fields are checked by the service (with readable messages); this only bounds the body.
FORM_LIMIT = 5000
EXPIRED = "This form had expired. Nothing was changed: please try again."
FormText = Annotated[str, Form(max_length=FORM_LIMIT)]


def _at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def vehicle_text(car: dict[str, Any] | None) -> str:
    """``{"year": "2021", "make": "Skoda", "model": "Octavia", "status": "used"}`` →
    ``2021 Skoda Octavia (used)``; the stock number is shown on its own."""
    if not car:
        return ""
    name = " ".join(str(car[k]) for k in ("year", "make", "model") if car.get(k))
    if car.get("status") and name:
        name += f" ({car['status']})"
    return name or str(car.get("status") or "")


def trade_in_text(car: dict[str, Any] | None) -> str:
    """A valuation lead names no car to buy: the list shows the one to part-exchange."""
    text = vehicle_text(car)
    return f"Part-exchange: {text}" if text else ""


@dataclass(frozen=True)
class LeadRow:
    id: str
    received: datetime
    site_name: str
    organisation: str
    purpose: str
    name: str
    email: str
    phone: str
    vehicle: str
    status: str
    gpc: bool


def lead_row(lead: dict[str, Any], organisations: dict[str, str]) -> LeadRow:
    person = lead["person"] or {}
    received = _at(lead["created_at"])
    assert received is not None
    return LeadRow(
        id=lead["id"],
        received=received,
        site_name=lead["site"]["name"] or "",
        organisation=organisations.get(lead["site"]["id"], ""),
        purpose=lead["purpose_label"],
        name=person.get("name") or "",
        email=person.get("email") or "",
        phone=person.get("phone") or "",
        vehicle=vehicle_text(lead["vehicle"]) or trade_in_text(lead.get("trade_in")),
        status=lead["status"],
        gpc=bool(lead["sale_share_opt_out"]),
    )


def _visit_view(visit: dict[str, Any] | None) -> dict[str, Any] | None:
    """The visit's usage data, labelled for people (countries, channels, devices by name)."""
    if visit is None:
        return None
    loc = visit["location"]
    device = visit["device"]
    browser = " ".join(str(x) for x in (device["browser"], device["browser_major"]) if x)
    return {
        "started": _at(visit["started_at"]),
        "length": duration(visit["seconds"] or 0),
        "pageviews": visit["pageviews"],
        "channel": key_label("channel", visit["channel"] or ""),
        "referrer": visit["referrer"],
        "location": ", ".join(
            x for x in (loc["city"], loc["region"], key_label("country", loc["country"] or "")) if x
        ),
        "device": " · ".join(
            x for x in (key_label("device", device["class"] or ""), browser, device["os"]) if x
        ),
        "returning": visit["returning"],
        "pages": [
            {
                "path": p["path"],
                "title": p["title"],
                "at": _at(p["at"]),
                "time": duration(p["seconds"]) if p["seconds"] else "",  # "" not measured
            }
            for p in visit["path"]
        ],
    }


def _lead_view(lead: dict[str, Any]) -> dict[str, Any]:
    """The detail dict with its times as datetimes (the templates localise them)."""
    out = dict(lead)
    out["received"] = _at(lead["created_at"])
    out["vehicle_text"] = vehicle_text(lead["vehicle"])
    out["trade_in_text"] = vehicle_text(lead["trade_in"])
    out["actions"] = [(s, label) for s, label in ACTIONS if s in TRANSITIONS[lead["status"]]]
    for key in ("consent", "transcript", "history", "transfers"):
        out[key] = [{**item, "at": _at(item.get("at"))} for item in lead[key]]
    for item in out["consent"]:
        item["answered"] = _at(item["answered_at"])
    for item in out["history"]:
        item["source_label"] = SOURCES.get(item["source"], str(item["source"]).capitalize())
    out["deliveries"] = [
        {
            **d,
            "state_label": (
                "Retrying"
                if d["state"] == "pending" and d["attempts"]
                else JOB_STATES.get(d["state"], d["state"])
            ),
            "done": _at(d["done_at"]),
            "next": _at(d["next_attempt_at"]),
            "log": [
                {**a, "at": _at(a["at"]), "outcome_label": OUTCOMES.get(a["outcome"], a["outcome"])}
                for a in d["log"]
            ],
        }
        for d in lead["deliveries"]
    ]
    return out


# ---- pages -----------------------------------------------------------------------------------


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


def _list_url(status: str, site: str, page: int = 0) -> str:
    params = {k: v for k, v in (("status", status), ("site", site)) if v}
    if page:
        params["page"] = str(page)
    return "/portal/leads" + (f"?{urlencode(params)}" if params else "")


@router.get("/leads", response_class=HTMLResponse)
async def leads(
    request: Request,
    ctx: Ctx,
    status: Annotated[str, Query(max_length=12)] = "",
    site: Annotated[str, Query(max_length=64)] = "",
    page: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> Response:
    session = await _session(request, ctx)
    if isinstance(session, Response):
        return session
    principal, csrf = session
    listed = await ctx.sites.list_sites(principal.scope)
    organisations = {s.id: org for s, org in listed}
    try:
        if status and status not in STATUSES:
            raise InvalidInput(f"Status must be one of: {', '.join(STATUSES)}.")
        if site and site not in organisations:
            raise NotFound("No such site.")
    except ConfideError as exc:
        return _error(request, exc, back="/portal/leads")
    found, has_next = await ctx.lead_records.list(
        principal, status=status or None, site_id=site or None, page=page
    )
    return _page(
        request,
        "portal/leads.html",
        {
            "user": principal,
            "csrf_token": csrf,
            "leads": [lead_row(x, organisations) for x in found],
            "sites": [{"id": s.id, "name": s.name, "organisation": org} for s, org in listed],
            "statuses": [("", "All")] + [(s, STATUS_LABELS[s]) for s in STATUSES],
            "status_labels": STATUS_LABELS,
            "status": status,
            "site_id": site,
            "page": page,
            "has_next": has_next,
            "prev_url": _list_url(status, site, page - 1) if page else None,
            "next_url": _list_url(status, site, page + 1) if has_next else None,
            "status_urls": {s: _list_url(s, site) for s in ("", *STATUSES)},
            "csv_url": "/portal/leads.csv"
            + (
                f"?{urlencode({k: v for k, v in (('status', status), ('site', site)) if v})}"
                if status or site
                else ""
            ),
        },
    )


@router.get("/leads.csv")
async def leads_csv(
    request: Request,
    ctx: Ctx,
    status: Annotated[str, Query(max_length=12)] = "",
    site: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    session = await _session(request, ctx)
    if isinstance(session, Response):
        return session
    try:
        body = await ctx.lead_records.csv_export(
            session[0], status=status or None, site_id=site or None
        )
    except ConfideError as exc:
        return _error(request, exc, back="/portal/leads")
    name = f"leads-{slug(status or 'all')}-{utcnow().date()}.csv"
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


async def _visit(ctx: Ctx, principal: Principal, visit_id: str | None) -> dict[str, Any] | None:
    if not visit_id:
        return None
    try:
        return await ctx.tracking.visit_detail(principal.scope, visit_id)
    except NotFound:
        return None  # erased or past its retention: the lead stands without it


async def _lead_page(
    request: Request,
    ctx: Ctx,
    session: tuple[Principal, str],
    lead_id: str,
    *,
    notice: str | None = None,
    error: tuple[str, str] | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    """The lead page; ``error`` is (the form it is about: "status" or "forward", the message)."""
    principal, csrf = session
    context: dict[str, Any] = {"user": principal, "csrf_token": csrf}
    try:
        lead = await ctx.lead_records.detail(principal, lead_id)
    except NotFound:
        return _page(request, "portal/lead.html", {**context, "lead": None}, 404)
    visit = _visit_view(await _visit(ctx, principal, lead["visit_id"]))
    context.update(
        lead=_lead_view(lead),
        visit=visit,
        visit_expected=bool(lead["visit_id"]),
        status_labels=STATUS_LABELS,
        notice=notice,
        error=error,
        form=form or {},
    )
    return _page(request, "portal/lead.html", context, status)


@router.get("/leads/{lead_id}", response_class=HTMLResponse)
async def lead(
    request: Request, ctx: Ctx, lead_id: str, done: Annotated[str, Query(max_length=20)] = ""
) -> Response:
    session = await _session(request, ctx)
    if isinstance(session, Response):
        return session
    notice = DONE.get(done)
    if done in STATUSES:
        notice = f"Status changed to {STATUS_LABELS[done].lower()}."
    return await _lead_page(request, ctx, session, lead_id, notice=notice)


def _csrf_ok(session: tuple[Principal, str], token: str) -> bool:
    return tokens_match(session[1], token)


@router.post("/leads/{lead_id}/status", response_class=HTMLResponse)
async def change_status(
    request: Request, ctx: Ctx, lead_id: str, csrf_token: FormText = "", status: FormText = ""
) -> Response:
    session = await _session(request, ctx)
    if isinstance(session, Response):
        return session
    if not _csrf_ok(session, csrf_token):
        return await _lead_page(
            request, ctx, session, lead_id, error=("status", EXPIRED), status=403
        )
    try:
        await ctx.lead_records.set_status(session[0], lead_id, status)
    except ConfideError as exc:
        return await _lead_page(
            request, ctx, session, lead_id, error=("status", exc.message), status=status_for(exc)
        )
    return RedirectResponse(f"/portal/leads/{lead_id}?done={status}", status_code=303)


@router.post("/leads/{lead_id}/forward", response_class=HTMLResponse)
async def forward(
    request: Request,
    ctx: Ctx,
    lead_id: str,
    csrf_token: FormText = "",
    recipient_name: FormText = "",
    recipient_contact: FormText = "",
    reason: FormText = "",
) -> Response:
    session = await _session(request, ctx)
    if isinstance(session, Response):
        return session
    typed = {
        "recipient_name": recipient_name,
        "recipient_contact": recipient_contact,
        "reason": reason,
    }
    if not _csrf_ok(session, csrf_token):
        return await _lead_page(
            request, ctx, session, lead_id, error=("forward", EXPIRED), form=typed, status=403
        )
    try:
        await ctx.lead_records.forward(session[0], lead_id, **typed)
    except ConfideError as exc:
        return await _lead_page(
            request,
            ctx,
            session,
            lead_id,
            error=("forward", exc.message),
            form=typed,
            status=status_for(exc),
        )
    return RedirectResponse(f"/portal/leads/{lead_id}?done=forwarded#transfers", status_code=303)
