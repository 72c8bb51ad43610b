"""The client portal's privacy requests: the queue by due date, one request, and the decision.

The client is the controller: its staff (and our admins) approve, refuse or extend a request;
operators get a 403 page (:func:`~confide.web.routes.privacy_api.require_decider`). Server-rendered
like :mod:`confide.web.routes.portal_leads`: forms POST with the session's CSRF token and redirect
back to the request; a refused decision renders the request again with the reason and what was
typed. A request of another organisation is a 404 page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from confide.accounts.principal import Principal
from confide.errors import ConfideError, NotFound
from confide.privacy.lifecycle import DENIAL_BASES, TERMINAL, State
from confide.web.context import AppContext
from confide.web.deps import Ctx, tokens_match
from confide.web.errors import status_for
from confide.web.routes.console import _page, _signed_in
from confide.web.routes.portal import _error
from confide.web.routes.privacy_api import DETAILS_LIMIT, require_decider
from confide.web.signin_redirect import to_sign_in

router = APIRouter(prefix="/portal", include_in_schema=False)

#: Request types as the business's staff call them.
KINDS = {
    "access": "Copy of their data",
    "deletion": "Deletion",
    "correction": "Correction",
    "opt_out": "Opt-out of sale or sharing",
    "withdraw_consent": "Consent withdrawn",
    "object_marketing": "Objection to marketing",
    "object_automated": "Objection to automated decisions",
    "restriction": "Restriction of use",
}
STATES = {
    "received": "Received",
    "identity_unverified": "Awaiting identity check",
    "requires_input": "Awaiting the requester",
    "pending": "Needs your decision",
    "approved": "Approved",
    "in_processing": "In progress",
    "complete": "Complete",
    "denied": "Refused",
    "canceled": "Cancelled",
    "error": "Failed",
}
#: The queue's filters, in the order of the work.
FILTERS = ("", "pending", "identity_unverified", "requires_input", "error", "complete", "denied")
FILTER_LABELS = {"": "All", "identity_unverified": "Awaiting identity"}
#: Decisions the lifecycle allows from each open state (lifecycle.move has the final word).
DENIABLE = frozenset({State.IDENTITY_UNVERIFIED, State.REQUIRES_INPUT, State.PENDING})
DONE = {
    "approved": "Approved. The request has been carried out and the person has been told.",
    "processing": "Approved. Their information has been erased; the request is complete, and the "
    "person is told, once the recipients of their leads have been sent the erasure notice.",
    "denied": "Refused. The person has been sent your reason and how to complain.",
    "extended": "Deadline extended. The person has been told why and the new date.",
    "failed": "Approved, but it could not be carried out: the reason is in the history below.",
    "closed": "Closed. Nothing more will be done with this request.",
}
#: The erasure certificate in words: what each store is, how it was erased, the outcome.
STORES = {
    "outbox": "Deliveries not yet made",
    "leads": "Leads and onward transfers",
    "consent_records": "Consent records",
    "chat_identifiers": "Emails and phone numbers typed in chats (look-up keys)",
    "conversations": "Chats and messages",
    "behaviour": "Visits and pages viewed",
    "browsers": "Browser identifiers",
    "persons": "Contact details and their history",
    "visitors": "Chat visitor records",
    "keys": "The person's encryption keys",
}
METHODS = {"delete": "Deleted", "crypto-shred": "Keys destroyed", "notice": "Notice to recipient"}
TASK_STATES = {"done": "Done", "skipped": "Kept", "pending": "To do", "failed": "Failed"}
#: What approving does, per request type (shown beside the button).
EFFECTS = {
    "access": "The person is emailed a link to download everything held about them (for 7 days).",
    "deletion": "Their information is erased from every store except what a legal hold keeps, and "
    "recipients of their leads are told to erase it. This cannot be undone.",
    "correction": "The detail is corrected on file, and corrected leads are sent again to where "
    "the originals went.",
    "withdraw_consent": "Consent is withdrawn in their chats; leads not yet delivered are stopped.",
    "object_marketing": "Their file is marked: no more direct marketing.",
    "object_automated": "Their file is marked: no decisions by automated means alone.",
    "restriction": "Their file is marked restricted; leads not yet delivered are stopped.",
}
EXPIRED = "This form had expired. Nothing was changed: please try again."
FormText = Annotated[str, Form(max_length=DETAILS_LIMIT * 2)]


def _at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


async def _session(request: Request, ctx: AppContext) -> tuple[Principal, str] | Response:
    """The signed-in client or admin, or the response to send instead (sign-in, 403 page)."""
    session = await _signed_in(request, ctx)
    if session is None:
        return to_sign_in(request)
    try:
        require_decider(session[0])
    except ConfideError as exc:
        return _error(request, exc)
    return session


def _row(item: dict[str, Any], organisations: dict[str, str]) -> dict[str, Any]:
    return {
        **item,
        "kind_label": KINDS.get(item["kind"], item["kind"]),
        "state_label": _state_label(item),
        "received": _at(item["received_at"]),
        "due": _at(item["due_at"]),
        "organisation": organisations.get(item["organisation_id"], ""),
    }


def _state_label(item: dict[str, Any]) -> str:
    """``requires_input`` waits for an agent's authorisation, or (after the code) for more
    proof of identity (R47): say which."""
    if item["state"] == "requires_input":
        if item.get("needs"):
            return "Awaiting more proof of identity"
        return "Awaiting agent's authorisation"
    return STATES.get(item["state"], str(item["state"]))


async def _organisations(ctx: AppContext, principal: Principal) -> dict[str, str]:
    return {o.id: o.name for o in await ctx.accounts.list_organisations(principal.scope)}


@router.get("/privacy", response_class=HTMLResponse)
async def queue(
    request: Request, ctx: Ctx, state: Annotated[str, Query(max_length=20)] = ""
) -> Response:
    session = await _session(request, ctx)
    if isinstance(session, Response):
        return session
    principal, csrf = session
    problem = None
    if state and state not in STATES:
        problem, state = "There is no such filter: showing all requests.", ""
    organisations = await _organisations(ctx, principal)
    rows = [_row(r, organisations) for r in await ctx.privacy.queue(principal, state or None)]
    return _page(
        request,
        "portal/privacy.html",
        {
            "user": principal,
            "csrf_token": csrf,
            "requests": rows,
            "state": state,
            "filters": [(s, FILTER_LABELS.get(s, STATES.get(s, s))) for s in FILTERS],
            "state_label": STATES.get(state, ""),
            "many_organisations": principal.scope.unrestricted and len(organisations) > 1,
            "problem": problem,
        },
        422 if problem else 200,
    )


def _store_label(store: str) -> str:
    kind, _, ref = store.partition(":")
    if kind == "recipient":
        return f"Destination {ref} (received the lead)"
    if kind == "recipient_notification":
        return "Onward recipient (to be told)"
    return STORES.get(store, store)


def _task(task: dict[str, Any]) -> dict[str, Any]:
    return {
        **task,
        "store_label": _store_label(task["store"]),
        "method_label": METHODS.get(task["method"], task["method"]),
        "state_label": TASK_STATES.get(task["state"], task["state"]),
    }


def _note(note: str | None, state: str) -> str:
    """An event's note as a sentence, or "" when it only repeats the state ("approved")."""
    if not note or state.endswith(note.lower().replace(" ", "_")):
        return ""
    return note[:1].upper() + note[1:]


def _detail_view(found: dict[str, Any], principal: Principal) -> dict[str, Any]:
    state = State(found["state"])
    out = _row(found, {})
    out.update(
        verified=_at(found["identity_verified_at"]),
        completed=_at(found["completed_at"]),
        denial_basis_label=DENIAL_BASES.get(found.get("denial_basis") or "", ""),
        can_approve=state is State.PENDING,
        can_deny=state in DENIABLE,
        can_close=state is State.ERROR,
        can_extend=state not in TERMINAL and not found["extended"],
        effect=EFFECTS.get(found["kind"], ""),
        tasks=[_task(t) for t in found["tasks"]],
        task_reasons=any(t["reason"] for t in found["tasks"]),
        events=[
            {
                **e,
                "at": _at(e["at"]),
                "from_label": STATES.get(e["from"] or "", ""),
                "to_label": STATES.get(e["to"], e["to"]),
                "note": _note(e["note"], e["to"]),
                "by": "You"
                if e["actor"] == principal.user_id
                else ("Staff member" if e["actor"] else "Automatic"),
            }
            for e in found["events"]
        ],
    )
    return out


async def _detail_page(
    request: Request,
    ctx: AppContext,
    session: tuple[Principal, str],
    request_id: str,
    *,
    notice: str | None = None,
    error: tuple[str, str] | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    """The request page; ``error`` is (the form it is about: approve, deny or extend, message)."""
    principal, csrf = session
    context: dict[str, Any] = {"user": principal, "csrf_token": csrf}
    try:
        found = await ctx.privacy.detail(principal, request_id)
    except NotFound:
        return _page(request, "portal/privacy_request.html", {**context, "req": None}, 404)
    org = await ctx.accounts.get_organisation(principal.scope, found["organisation_id"])
    context.update(
        req=_detail_view(found, principal),
        organisation=org.name,
        notice=notice,
        error=error,
        form=form or {},
        denial_bases=DENIAL_BASES,
    )
    return _page(request, "portal/privacy_request.html", context, status)


@router.get("/privacy/{request_id}", response_class=HTMLResponse)
async def detail(
    request: Request, ctx: Ctx, request_id: str, done: Annotated[str, Query(max_length=20)] = ""
) -> Response:
    session = await _session(request, ctx)
    if isinstance(session, Response):
        return session
    return await _detail_page(request, ctx, session, request_id, notice=DONE.get(done))


async def _decide(
    request: Request,
    ctx: AppContext,
    request_id: str,
    action: str,
    csrf_token: str,
    reason: str,
    basis: str = "",
) -> Response:
    """Approve, deny or extend; 303 back to the request, or the request with the reason why not."""
    session = await _session(request, ctx)
    if isinstance(session, Response):
        return session
    principal = session[0]
    typed = {"reason": reason, "basis": basis}
    if not tokens_match(session[1], csrf_token):
        return await _detail_page(
            request, ctx, session, request_id, error=(action, EXPIRED), form=typed, status=403
        )
    done = {"approve": "approved", "deny": "denied", "extend": "extended", "close": "closed"}[
        action
    ]
    try:
        if action == "approve":
            approved = await ctx.privacy.approve(principal, request_id)
            if approved.state == State.ERROR.value:
                done = "failed"
            elif approved.state != State.COMPLETE.value:
                done = "processing"  # waiting for the erasure notices (R51)
        elif action == "close":
            await ctx.privacy.close(principal, request_id)
        elif action == "deny":
            await ctx.privacy.deny(principal, request_id, reason, basis or None)
        else:
            await ctx.privacy.extend(principal, request_id, reason)
    except ConfideError as exc:
        error = (action, exc.message)
        return await _detail_page(
            request, ctx, session, request_id, error=error, form=typed, status=status_for(exc)
        )
    return RedirectResponse(f"/portal/privacy/{request_id}?done={done}", status_code=303)


@router.post("/privacy/{request_id}/approve", response_class=HTMLResponse)
async def approve(
    request: Request, ctx: Ctx, request_id: str, csrf_token: FormText = ""
) -> Response:
    return await _decide(request, ctx, request_id, "approve", csrf_token, "")


@router.post("/privacy/{request_id}/deny", response_class=HTMLResponse)
async def deny(
    request: Request,
    ctx: Ctx,
    request_id: str,
    csrf_token: FormText = "",
    reason: FormText = "",
    basis: FormText = "",
) -> Response:
    return await _decide(request, ctx, request_id, "deny", csrf_token, reason, basis)


@router.post("/privacy/{request_id}/extend", response_class=HTMLResponse)
async def extend(
    request: Request, ctx: Ctx, request_id: str, csrf_token: FormText = "", reason: FormText = ""
) -> Response:
    return await _decide(request, ctx, request_id, "extend", csrf_token, reason)


@router.post("/privacy/{request_id}/close", response_class=HTMLResponse)
async def close(request: Request, ctx: Ctx, request_id: str, csrf_token: FormText = "") -> Response:
    """A request that failed and will not be tried again: closed, its personal data cleared."""
    return await _decide(request, ctx, request_id, "close", csrf_token, "")
