"""The public privacy-request pages: the form, the request's own page, the access package.

A data subject uses these without an account. The flow:

    GET  /privacy/{organisation_id}  (or /privacy/site/{site_key}, linked from the widget)
    POST the same address ──► PrivacyService.submit ──► 303 ──► GET /privacy/requests/{id}
    POST /privacy/requests/{id}/verify | /resend | /designation ──► 303 back to the request page
    GET  /privacy/requests/{id}/export?token=…&format=json|html  (the emailed link)

The request page says the same thing whether or not the details given match anyone on file
(:data:`~confide.privacy.service.RECEIVED`), so it cannot be used to probe for customers. The
request id in the address is what the requester holds; the page shows no personal data.

Forms are protected by a double-submit cookie (as the console's sign-in form is: there is no
session to tie a token to). Every page works without JavaScript. Errors are rendered here as
pages: the app-wide handler answers JSON outside the console and portal.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from confide.accounts.models import Organisation
from confide.clock import utcnow
from confide.errors import ConfideError, InvalidInput, NotFound
from confide.ids import new_secret
from confide.privacy import certainty
from confide.privacy.fulfil import CORRECTABLE
from confide.privacy.lifecycle import KINDS
from confide.privacy.models import PrivacyRequest
from confide.privacy.notify import COMPLAINT_ROUTE
from confide.privacy.service import RECEIVED, Intake, still_needed
from confide.storage.scope import Scope
from confide.web.context import AppContext
from confide.web.deps import Ctx, tokens_match
from confide.web.errors import TITLES, status_for
from confide.web.routes.console import _page
from confide.web.routes.portal import duration
from confide.web.routes.privacy_api import DESIGNATION_LIMIT, DETAILS_LIMIT, submit
from confide.web.security import secure_cookie
from confide.web.throttle import limited

router = APIRouter(prefix="/privacy", include_in_schema=False)

CSRF_COOKIE = "confide_privacy_csrf"
#: Bounds the body only; the fields' own limits are checked below with readable messages.
FORM_LIMIT = 20_000
EXPIRED = "This form had expired, so nothing was sent. Please try again."

#: The request types in the words a person would use, in the order the form lists them.
KIND_LABELS = {
    "access": "See a copy of my information",
    "deletion": "Delete my information",
    "correction": "Correct my information",
    "opt_out": "Do not sell or share my information",
    "withdraw_consent": "Withdraw my consent to share my details",
    "object_marketing": "Stop direct marketing",
    "object_automated": "Object to automated decisions",
    "restriction": "Restrict use of my information",
}
assert tuple(KIND_LABELS) == KINDS, "a request type has no wording on the form"
KIND_HINTS = {
    "access": "We email you a link to download everything held about you.",
    "deletion": "Anything the law requires the business to keep is kept, and we tell you what.",
    "correction": "Tell us which detail is wrong and what it should say.",
    "opt_out": "Applied straight away. No code is needed.",
    "withdraw_consent": "Your details stop being passed on from chats where you agreed to it.",
    "object_marketing": "Your details are no longer used to market to you.",
    "object_automated": "No decision about you is made by automated means alone.",
    "restriction": "Your information is kept but not used, for example while you dispute it.",
}
#: Where the request page is in the lifecycle, in the requester's terms.
PHASES = {
    "received": "working",
    "identity_unverified": "code",
    "requires_input": "designation",
    "pending": "review",
    "approved": "working",
    "in_processing": "working",
    "complete": "done",
    "denied": "refused",
    "canceled": "cancelled",
    "error": "delayed",
}
#: What the request page says after a redirect-after-POST (``?done=…``); never text from the URL.
DONE = {
    "verified": "Thank you, your code is confirmed.",
    "resent": "If we hold information linked to the details you gave, a new code is on its way. "
    "Only the newest code works.",
    "designation": "Thank you, we have the agent's written authorisation.",
    "identity": "Thank you, we have your details.",
    "cancelled": "Your request is cancelled.",
}
#: Service messages → the form field they are about (for the error summary's links).
_FIELD_OF = (
    ("Choose a request type", "kind"),
    ("That email", "email"),
    ("Give the email", "email"),
    ("That phone", "phone"),
    ("Say what to correct", "details"),
    ("Give the agent", "agent_designation"),
    ("Sign the declaration", "name"),
    ("Name is limited", "name"),
    ("Postcode", "postcode"),
)


# ---- rendering -------------------------------------------------------------------------------


def _token(request: Request) -> str:
    """The visitor's double-submit token: kept while valid (several tabs keep working)."""
    current = request.cookies.get(CSRF_COOKIE, "")
    return current if 32 <= len(current) <= 100 else new_secret()


def _csrf_ok(request: Request, sent: str) -> bool:
    expected = request.cookies.get(CSRF_COOKIE, "")
    return tokens_match(expected, sent)


def _render(
    request: Request, ctx: AppContext, template: str, context: dict[str, Any], status: int = 200
) -> Response:
    token = _token(request)
    context.update(
        csrf_token=token, complaint_route=COMPLAINT_ROUTE, declaration=certainty.DECLARATION
    )
    response = _page(request, template, context, status)
    response.headers["Referrer-Policy"] = "no-referrer"  # the address is the requester's key
    response.set_cookie(
        CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=secure_cookie(request, ctx.settings),
        path="/privacy",
    )
    return response


def error_page(request: Request, exc: ConfideError) -> Response:
    status = status_for(exc)
    response = _page(
        request,
        "privacy/error.html",
        {"status": status, "title": TITLES.get(status, "Error"), "detail": exc.message},
        status,
    )
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


# ---- the form --------------------------------------------------------------------------------


class RequestForm(BaseModel):
    csrf_token: str = Field(default="", max_length=200)
    kind: str = Field(default="", max_length=40)
    email: str = Field(default="", max_length=FORM_LIMIT)
    phone: str = Field(default="", max_length=FORM_LIMIT)
    details: str = Field(default="", max_length=FORM_LIMIT)
    california: bool = False
    agent: bool = False
    agent_designation: str = Field(default="", max_length=FORM_LIMIT)
    power_of_attorney: bool = False
    access_scope: str = Field(default="specific", max_length=20)
    name: str = Field(default="", max_length=FORM_LIMIT)
    postcode: str = Field(default="", max_length=FORM_LIMIT)
    declaration: bool = False

    def problems(self) -> dict[str, str]:
        """What is missing or too long, by field in the page's order (the rest is the
        service's to check)."""
        out: dict[str, str] = {}
        if self.kind not in KIND_LABELS:
            out["kind"] = "Choose what you would like us to do."
        if self.kind == "correction" and not self.details.strip():
            out["details"] = "Say what to correct, for example: phone: 07400 123456."
        elif len(self.details) > DETAILS_LIMIT:
            out["details"] = f"Keep this under {DETAILS_LIMIT:,} characters."
        if len(self.email) > 320:
            out["email"] = "That email address is too long."
        elif not self.email.strip() and not self.phone.strip():
            out["email"] = "Give the email address or phone number you used with the business."
        if len(self.phone) > 40:
            out["phone"] = "That phone number is too long."
        if self.agent and len(self.agent_designation) > DESIGNATION_LIMIT:
            out["agent_designation"] = f"Keep this under {DESIGNATION_LIMIT:,} characters."
        if self.california and self.declaration and not self.name.strip():
            out["name"] = "Sign the declaration with your full name."
        return out

    def intake(self) -> Intake:
        return Intake(
            self.kind,
            email=self.email.strip() or None,
            phone=self.phone.strip() or None,
            regime="ccpa" if self.california else "gdpr",
            details=(self.details.strip() or None) if self.kind == "correction" else None,
            agent_designation=(self.agent_designation.strip() or None) if self.agent else None,
            power_of_attorney=self.agent and self.power_of_attorney,
            channel="agent" if self.agent else "form",
            # The extra proof is California's (certainty.py): not asked for otherwise.
            access_scope=self.access_scope if self.california and self.kind == "access" else None,
            name=(self.name.strip() or None) if self.california else None,
            postcode=(self.postcode.strip() or None) if self.california else None,
            declaration=self.california and self.declaration,
        )


def _field_of(message: str) -> str:
    return next((field for prefix, field in _FIELD_OF if message.startswith(prefix)), "")


async def _organisation(ctx: AppContext, organisation_id: str) -> Organisation:
    return await ctx.accounts.get_organisation(Scope.system(), organisation_id)


def _form(
    request: Request,
    ctx: AppContext,
    org: Organisation,
    form: RequestForm,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    context = {
        "org_name": org.name,
        "action": request.url.path,
        "form": form,
        "errors": errors or {},
        "kinds": [(k, KIND_LABELS[k], KIND_HINTS[k]) for k in KIND_LABELS],
        "correctable": f"{', '.join(CORRECTABLE[:-1])} or {CORRECTABLE[-1]}",
    }
    return _render(request, ctx, "privacy/form.html", context, status)


async def _send(request: Request, ctx: AppContext, org_id: str, form: RequestForm) -> Response:
    """The form's POST: 303 to the new request's page, or the form again with what to fix."""
    try:
        org = await _organisation(ctx, org_id)
    except NotFound as exc:
        return error_page(request, exc)
    if not _csrf_ok(request, form.csrf_token):
        return _form(request, ctx, org, form, {"": EXPIRED}, 403)
    problems = form.problems()
    if problems:
        return _form(request, ctx, org, form, problems, 422)
    try:
        req = await submit(ctx, org.id, form.intake())
    except InvalidInput as exc:
        return _form(request, ctx, org, form, {_field_of(exc.message): exc.message}, 422)
    except ConfideError as exc:
        return error_page(request, exc)
    return RedirectResponse(f"/privacy/requests/{req.id}", status_code=303)


async def _blank(request: Request, ctx: AppContext, org_id: str) -> Response:
    try:
        org = await _organisation(ctx, org_id)
    except NotFound as exc:
        return error_page(request, exc)
    return _form(request, ctx, org, RequestForm())


async def _site_org(ctx: AppContext, site_key: str) -> str:
    return (await ctx.sites.by_key(site_key, serving=False)).organisation_id


FormData = Annotated[RequestForm, Form()]


@router.get("/site/{site_key}", response_class=HTMLResponse)
async def site_form(request: Request, ctx: Ctx, site_key: str) -> Response:
    """The widget's privacy panel links here: the form of the site's organisation."""
    try:
        return await _blank(request, ctx, await _site_org(ctx, site_key))
    except NotFound as exc:
        return error_page(request, exc)


@router.post(
    "/site/{site_key}", response_class=HTMLResponse, dependencies=[limited("privacy_request")]
)
async def site_send(request: Request, ctx: Ctx, site_key: str, form: FormData) -> Response:
    try:
        return await _send(request, ctx, await _site_org(ctx, site_key), form)
    except NotFound as exc:
        return error_page(request, exc)


# ---- the request's page ------------------------------------------------------------------------


@dataclass(frozen=True)
class PublicRequest:
    """What the request page may show to whoever holds its address: no personal data, and
    nothing that tells whether the details given matched anyone."""

    id: str
    organisation_id: str
    organisation: str
    kind: str
    regime: str
    phase: str
    received: datetime
    due: datetime
    extended: bool
    extension_reason: str | None
    decision_reason: str | None
    partial: bool
    access_scope: str = "specific"
    #: After the code, what is still needed to be sure (R47), in words.
    needs: str | None = None


async def public_request(ctx: AppContext, request_id: str) -> PublicRequest:
    """The request as its page shows it. PrivacyService has no public read of a request (its
    ``detail`` needs a signed-in reviewer), so this reads it here, taking only the fields above."""
    async with ctx.db.session(Scope.system(), read_only=True) as s:
        req = await s.get(PrivacyRequest, request_id)
        if req is None:
            raise NotFound("There is no privacy request at this address.")
        org = await s.get(Organisation, req.organisation_id)
    return PublicRequest(
        id=req.id,
        organisation_id=req.organisation_id,
        organisation=org.name if org else "the business",
        kind=req.kind,
        regime=req.regime,
        phase="more" if still_needed(req) else PHASES.get(req.state, "delayed"),
        received=req.received_at,
        due=req.extended_due_at or req.due_at,
        extended=req.extended_due_at is not None,
        extension_reason=req.extension_reason,
        decision_reason=req.decision_reason,
        partial=req.partial,
        access_scope=req.access_scope,
        needs=still_needed(req),
    )


def _day(at: datetime) -> str:
    return f"{at.day} {at:%B %Y}"


async def _request_page(
    request: Request,
    ctx: AppContext,
    request_id: str,
    *,
    notice: str | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    try:
        req = await public_request(ctx, request_id)
    except NotFound as exc:
        return error_page(request, exc)
    context = {
        "req": req,
        "kind_label": KIND_LABELS.get(req.kind, req.kind),
        "received_text": RECEIVED,
        "notice": notice,
        "errors": errors or {},
        "org_name": req.organisation,
        "received_day": _day(req.received),
        "due_day": _day(req.due),
    }
    return _render(request, ctx, "privacy/request.html", context, status)


@router.get("/requests/{request_id}", response_class=HTMLResponse)
async def request_page(
    request: Request, ctx: Ctx, request_id: str, done: Annotated[str, Query(max_length=20)] = ""
) -> Response:
    return await _request_page(request, ctx, request_id, notice=DONE.get(done))


async def _act(
    request: Request,
    ctx: AppContext,
    request_id: str,
    csrf_token: str,
    step: tuple[str, str],
    action: Callable[[], Awaitable[object]],
) -> Response:
    """Run one of the request page's forms; ``step`` is (its field, its ``done`` word)."""
    field, done = step
    if not _csrf_ok(request, csrf_token):
        return await _request_page(request, ctx, request_id, errors={"": EXPIRED}, status=403)
    try:
        await action()
    except NotFound as exc:
        return error_page(request, exc)
    except ConfideError as exc:  # a wrong code is about the field; a changed state is not
        about = field if isinstance(exc, InvalidInput) else ""
        return await _request_page(
            request, ctx, request_id, errors={about: exc.message}, status=status_for(exc)
        )
    return RedirectResponse(f"/privacy/requests/{request_id}?done={done}", status_code=303)


FormText = Annotated[str, Form(max_length=FORM_LIMIT)]


@router.post(
    "/requests/{request_id}/verify",
    response_class=HTMLResponse,
    dependencies=[limited("privacy_code")],
)
async def verify(
    request: Request, ctx: Ctx, request_id: str, csrf_token: FormText = "", code: FormText = ""
) -> Response:
    step = ("code", "verified")
    if not code.strip():
        return await _request_page(
            request, ctx, request_id, errors={"code": "Enter the code we sent you."}, status=422
        )
    return await _act(
        request, ctx, request_id, csrf_token, step, lambda: ctx.privacy.verify(request_id, code)
    )


@router.post(
    "/requests/{request_id}/resend",
    response_class=HTMLResponse,
    dependencies=[limited("privacy_code")],
)
async def resend(
    request: Request, ctx: Ctx, request_id: str, csrf_token: FormText = ""
) -> Response:
    step = ("code", "resent")
    return await _act(
        request, ctx, request_id, csrf_token, step, lambda: ctx.privacy.resend_code(request_id)
    )


@router.post(
    "/requests/{request_id}/identity",
    response_class=HTMLResponse,
    dependencies=[limited("privacy_code")],
)
async def identity(
    request: Request,
    ctx: Ctx,
    request_id: str,
    csrf_token: FormText = "",
    name: FormText = "",
    postcode: FormText = "",
    declaration: Annotated[bool, Form()] = False,
    access_scope: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """More proof of identity after the code (R47), or an access request narrowed to the
    categories of data."""
    step = ("name", "identity")

    def add() -> Awaitable[object]:
        return ctx.privacy.add_identity_details(
            request_id,
            name=name.strip() or None,
            postcode=postcode.strip() or None,
            declaration=declaration,
            access_scope=access_scope or None,
        )

    return await _act(request, ctx, request_id, csrf_token, step, add)


@router.post(
    "/requests/{request_id}/cancel",
    response_class=HTMLResponse,
    dependencies=[limited("privacy_code")],
)
async def cancel(
    request: Request, ctx: Ctx, request_id: str, csrf_token: FormText = ""
) -> Response:
    """The person withdraws their request before it is carried out."""
    step = ("", "cancelled")
    return await _act(
        request, ctx, request_id, csrf_token, step, lambda: ctx.privacy.withdraw(request_id)
    )


@router.post(
    "/requests/{request_id}/designation",
    response_class=HTMLResponse,
    dependencies=[limited("privacy_request")],
)
async def designation(
    request: Request,
    ctx: Ctx,
    request_id: str,
    csrf_token: FormText = "",
    agent_designation: FormText = "",
) -> Response:
    step = ("agent_designation", "designation")
    if len(agent_designation) > DESIGNATION_LIMIT:
        too_long = {"agent_designation": f"Keep this under {DESIGNATION_LIMIT:,} characters."}
        return await _request_page(request, ctx, request_id, errors=too_long, status=422)
    return await _act(
        request,
        ctx,
        request_id,
        csrf_token,
        step,
        lambda: ctx.privacy.provide_designation(request_id, agent_designation),
    )


# ---- the access package ------------------------------------------------------------------------

#: Each store of the package, for people: (heading, what it holds, what one record is called).
STORES = {
    "persons": (
        "Your details",
        "The contact details held about you, and every change made to them.",
        "Details",
    ),
    "conversations": ("Chats", "Your conversations in the website's chat, word for word.", "Chat"),
    "leads": (
        "Enquiries",
        "Enquiries passed to the business, and anyone they were passed on to at your request.",
        "Enquiry",
    ),
    "consent_records": (
        "Your consent answers",
        "What you were asked about sharing your details, and what you answered.",
        "Answer",
    ),
    "outbox": (
        "Who received your details",
        "Each time an enquiry of yours was sent to the business's own systems.",
        "Delivery",
    ),
    "behaviour": ("Visits to the website", "Visits linked to you, with the pages viewed.", "Visit"),
    "browsers": (
        "Browsers",
        "The browsers you used, each known to a website by a random identifier.",
        "Browser",
    ),
    "visitors": ("Chat visitor records", "What the chat keeps about your browser.", "Record"),
}
AUTHORS = {"visitor": "You", "agent": "Staff", "system": "Chat"}
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
_WHEN_KEYS = ("started_at", "created_at", "answered_at", "at")


@dataclass(frozen=True)
class Part:
    """A list inside a record: a chat's transcript, a visit's pages, or records of their own."""

    title: str
    kind: str  # transcript, pages or table
    items: list[Any]


@dataclass(frozen=True)
class Record:
    heading: str
    when: str
    facts: list[tuple[str, str]]
    refs: list[tuple[str, str]]  # ids: shown folded away, they mean little to a person
    parts: list[Part]


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    about: str
    records: list[Record]


#: Column names that do not read well as they are.
LABELS = {
    "sale_share_opt_out": "Opted out of sale or sharing",
    "marketing_objection": "Objected to marketing",
    "automated_objection": "Objected to automated decisions",
    "restricted": "Use restricted",
    "field_name": "Detail",
    "ip_truncated": "IP address (shortened)",
    "user_agent": "Browser description",
    "text_sha256": "Fingerprint of the text (SHA-256)",
}


def _label(key: str) -> str:
    return LABELS.get(key) or key.replace("_", " ").capitalize()


def _text(value: Any) -> str:
    """A stored value as a person reads it ("" for nothing recorded)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, str) and _ISO.match(value):
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        at = at.astimezone(UTC) if at.tzinfo else at  # stored in UTC; naive means UTC
        return f"{at.strftime('%d %b %Y, %H:%M')} UTC"
    if isinstance(value, dict):
        return "; ".join(f"{_label(str(k))}: {_text(v) or 'none'}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return str(value)


def _part(key: str, rows: list[dict[str, Any]]) -> Part:
    if key == "messages":
        items: list[Any] = [
            {
                "who": AUTHORS.get(str(m.get("author_role")), _label(str(m.get("author_role")))),
                "text": m.get("text") or "",
                "at": _text(m.get("created_at")),
                "mine": m.get("author_role") == "visitor",
            }
            for m in rows
        ]
        return Part("Transcript", "transcript", items)
    if key == "pages":
        items = [
            {
                "title": p.get("title") or p.get("path") or "",
                "path": p.get("path") if p.get("title") else "",
                "at": _text(p.get("at")),
                "time": duration(p["seconds"]) if p.get("seconds") else "",
            }
            for p in rows
        ]
        return Part("Pages viewed, in order", "pages", items)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    table = {
        "columns": [_label(k) for k in columns],
        "rows": [[_text(row.get(k)) for k in columns] for row in rows],
    }
    return Part(_label(key), "table", [table] if rows else [])


def _record(noun: str, n: int, row: dict[str, Any]) -> Record:
    facts, refs, parts = [], [], []
    for key, value in row.items():
        nested = isinstance(value, list) and all(isinstance(v, dict) for v in value)
        if nested and (value or key in ("messages", "pages")):
            parts.append(_part(key, value))
            continue
        if key == "id" or key.endswith(("_id", "_ids")):
            refs.append((_label(key), _text(value)))
        else:
            facts.append((_label(key), _text(value)))
    when = next((_text(row[k]) for k in _WHEN_KEYS if row.get(k)), "")
    return Record(f"{noun} {n}", when, facts, refs, parts)


#: The data map's categories (R50) in the words a person reads.
CATEGORY_WORDS = {
    "user.name": "your name",
    "user.contact": "contact details",
    "user.contact.email": "email address",
    "user.contact.phone_number": "phone number",
    "user.contact.address.street": "street address",
    "user.contact.address.city": "town or city",
    "user.contact.address.postal_code": "postcode",
    "user.contact.address.country": "country",
    "user.content.message": "what was said in chats",
    "user.content.enquiry": "messages left when nobody was online",
    "user.content.request": "what you asked for in a privacy request",
    "user.content.review": "your rating and comment of a chat",
    "user.preference.vehicle": "vehicles you were interested in",
    "user.device.browser": "browser and operating system",
    "user.device.cookie_id": "a cookie identifier (per website)",
    "user.device.ip_address": "a shortened network address",
    "user.device.token": "a chat session token",
    "user.location.country": "country (from the network address)",
    "user.location.region": "region (from the network address)",
    "user.location.city": "town (from the network address)",
    "user.pseudonym": "a pseudonymous visitor label",
}


def categories_view(package: dict[str, Any]) -> list[dict[str, Any]]:
    """A request for the categories of data: per kind of record, how many and what kinds."""
    held: dict[str, dict[str, Any]] = package["categories"]
    names = [n for n in STORES if n in held] + sorted(n for n in held if n not in STORES)
    return [
        {
            "title": STORES.get(name, (_label(name), "", ""))[0],
            "records": held[name]["records"],
            "kinds": [CATEGORY_WORDS.get(c, c) for c in held[name]["categories"]],
        }
        for name in names
    ]


def package_view(package: dict[str, Any]) -> dict[str, Any]:
    """The access package for the readable page: every store a section, in a sensible order."""
    if "categories" in package:
        manifest = package["manifest"]
        return {
            "organisation": manifest.get("organisation") or "the business",
            "generated": _text(manifest.get("generated_at")),
            "request": manifest.get("request"),
            "format": manifest.get("format"),
            "sections": [],
            "categories": categories_view(package),
        }
    data: dict[str, list[dict[str, Any]]] = package["data"]
    names = [n for n in STORES if n in data] + sorted(n for n in data if n not in STORES)
    sections = []
    for name in names:
        title, about, noun = STORES.get(name, (_label(name), "", "Record"))
        records = [_record(noun, i, row) for i, row in enumerate(data[name], 1)]
        sections.append(Section(name, title, about, records))
    manifest = package["manifest"]
    return {
        "organisation": manifest.get("organisation") or "the business",
        "generated": _text(manifest.get("generated_at")),
        "request": manifest.get("request"),
        "format": manifest.get("format"),
        "sections": sections,
    }


@router.get("/requests/{request_id}/export")
async def export(
    request: Request,
    ctx: Ctx,
    request_id: str,
    token: Annotated[str, Query(max_length=200)] = "",
    fmt: Annotated[str, Query(alias="format", max_length=10)] = "json",
) -> Response:
    """The emailed link: the JSON package as a download, or (``format=html``) a readable page."""
    if fmt not in ("json", "html"):
        return error_page(request, InvalidInput("The format is json or html."))
    try:
        package = await ctx.privacy.export_package(request_id, token)
    except NotFound as exc:
        return error_page(request, exc)
    if fmt == "html":
        view = package_view(package)
        context = {"package": view, "token": token, "org_name": view["organisation"]}
        response = _page(request, "privacy/export.html", context)
        response.headers["Referrer-Policy"] = "no-referrer"
        return response
    day = utcnow().date().isoformat()
    return Response(
        orjson.dumps(package, option=orjson.OPT_INDENT_2),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="my-information-{day}.json"',
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        },
    )


# ---- the organisation's form (last: "/{organisation_id}" matches any single segment) ----------


@router.get("/{organisation_id}", response_class=HTMLResponse)
async def organisation_form(request: Request, ctx: Ctx, organisation_id: str) -> Response:
    return await _blank(request, ctx, organisation_id)


@router.post(
    "/{organisation_id}", response_class=HTMLResponse, dependencies=[limited("privacy_request")]
)
async def organisation_send(
    request: Request, ctx: Ctx, organisation_id: str, form: FormData
) -> Response:
    return await _send(request, ctx, organisation_id, form)
