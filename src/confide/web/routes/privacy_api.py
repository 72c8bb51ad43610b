"""The JSON API for privacy requests (under /api/privacy): intake, verification and review.

Two audiences. A data subject (or a script acting for one) submits a request and verifies it with
the emailed code, without signing in: the request id is what they hold. The client's staff and our
admins read the queue and decide (approve, deny, extend) signed in, with the CSRF header on every
change. Operators answer chats; they do not decide requests (:func:`require_decider`).

Everything calls :class:`~confide.privacy.service.PrivacyService`, like the pages in
:mod:`confide.web.routes.privacy_pages` and :mod:`confide.web.routes.portal_privacy`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from confide.accounts.models import Role
from confide.accounts.principal import Principal
from confide.chat.views import iso
from confide.errors import Forbidden, InvalidInput
from confide.privacy.lifecycle import UNVERIFIED_KINDS, State
from confide.privacy.models import PrivacyRequest
from confide.privacy.service import RECEIVED, Intake, still_needed
from confide.web.context import AppContext
from confide.web.deps import CsrfPrincipal, Ctx, CurrentPrincipal
from confide.web.throttle import limited

router = APIRouter(prefix="/api", tags=["privacy"])

Kind = Literal[
    "access",
    "deletion",
    "correction",
    "opt_out",
    "withdraw_consent",
    "object_marketing",
    "object_automated",
    "restriction",
]
#: Long enough for any real detail or designation; the service stores what it is given.
DETAILS_LIMIT = 2000
DESIGNATION_LIMIT = 4000


def require_decider(principal: Principal) -> Principal:
    """Requests are read and decided by the client (the controller) or our admins, not operators:
    a request carries the requester's details and the decision is the controller's."""
    if principal.role is Role.OPERATOR:
        raise Forbidden("Privacy requests are decided by the client's staff or the Confide team.")
    return principal


async def submit(ctx: AppContext, organisation_id: str, intake: Intake) -> PrivacyRequest:
    """:meth:`PrivacyService.submit`, with its one plain ``ValueError`` (a correction not written
    as ``field: new value``) turned into the domain error every transport maps."""
    try:
        return await ctx.privacy.submit(organisation_id, intake)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


# ---- schemas ---------------------------------------------------------------------------------


class RequestIn(BaseModel):
    """A data subject's request. Give the email address or phone number used with the business;
    a code goes to the details already on file (the answer is the same whether or not they are)."""

    model_config = {"extra": "forbid"}
    kind: Kind
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40)
    regime: Literal["gdpr", "ccpa"] = "gdpr"
    #: For a correction: ``field: new value`` (e.g. ``phone: 07400 123456``).
    details: str | None = Field(default=None, max_length=DETAILS_LIMIT)
    #: An authorised agent's written designation: name, full contact details and mandate.
    agent_designation: str | None = Field(default=None, max_length=DESIGNATION_LIMIT)
    power_of_attorney: bool = False
    #: Access: a copy of the ``specific`` pieces (default) or the ``categories`` of data.
    access_scope: Literal["specific", "categories"] | None = None
    #: Details that help prove who you are (CCPA: a copy needs 3 matching details and the
    #: signed declaration; categories, deletion and correction need 2).
    name: str | None = Field(default=None, max_length=200)
    postcode: str | None = Field(default=None, max_length=12)
    #: You sign ``confide.privacy.certainty.DECLARATION`` with the name given.
    declaration: bool = False


class IdentityIn(BaseModel):
    """More details from a verified requester whose details did not yet match enough."""

    model_config = {"extra": "forbid"}
    name: str | None = Field(default=None, max_length=200)
    postcode: str | None = Field(default=None, max_length=12)
    declaration: bool = False
    access_scope: Literal["specific", "categories"] | None = None


class ReceivedOut(BaseModel):
    id: str
    state: str
    message: str
    due_at: str


class CodeIn(BaseModel):
    code: str = Field(min_length=1, max_length=20)


class ReasonIn(BaseModel):
    reason: str = Field(max_length=DETAILS_LIMIT)


class DenyIn(ReasonIn):
    #: One of the codes in ``confide.privacy.lifecycle.DENIAL_BASES``.
    basis: str = Field(
        max_length=32,
        description="identity_not_verified, manifestly_unfounded, excessive, legal_obligation, "
        "legal_claims, rights_of_others or other",
    )


class StateOut(BaseModel):
    id: str
    state: str
    #: When the state is ``requires_input`` after the code: what is still needed, in words.
    needs: str | None = None


class RequestOut(BaseModel):
    """A request as its reviewers see it (no personal data)."""

    id: str
    organisation_id: str
    kind: str
    regime: str
    state: str
    channel: str
    #: Whether anyone on file matched the details given.
    matched: bool
    received_at: str
    acknowledged_at: str | None
    identity_verified_at: str | None
    #: The deadline, extended if it was.
    due_at: str
    extended: bool
    extension_reason: str | None
    overdue: bool
    due_soon: bool
    decision_reason: str | None
    #: The refusal's (or partial erasure's) reason code.
    denial_basis: str | None
    completed_at: str | None
    partial: bool
    power_of_attorney: bool
    #: Access requests: ``specific`` or ``categories``.
    access_scope: str | None = None
    #: How many details matched what is held, once the code was right (R47).
    data_points: int | None = None
    #: Whether the requester signed the declaration.
    declared: bool = False
    needs: str | None = None


class EventOut(BaseModel):
    at: str
    from_: str | None = Field(alias="from")
    to: str
    actor: str | None
    note: str | None


class TaskOut(BaseModel):
    """One store's part of an erasure (the erasure certificate)."""

    store: str
    state: str
    method: str
    rows: int
    reason: str | None


class RequestDetailOut(RequestOut):
    """A request with what it asks (cleared when it ends), its history and its erasure tasks."""

    details: str | None
    agent_designation: str | None
    events: list[EventOut]
    tasks: list[TaskOut]


class QueueOut(BaseModel):
    requests: list[RequestOut]


# ---- the data subject (no sign-in) -----------------------------------------------------------


@router.post(
    "/privacy/{organisation_id}/requests",
    status_code=202,
    summary="Make a privacy request (public)",
    dependencies=[limited("privacy_request")],
)
async def make_request(ctx: Ctx, organisation_id: str, body: RequestIn) -> ReceivedOut:
    agent = bool((body.agent_designation or "").strip()) or body.power_of_attorney
    intake = Intake(
        body.kind,
        email=body.email or None,
        phone=body.phone or None,
        regime=body.regime,
        details=body.details or None,
        agent_designation=body.agent_designation or None,
        power_of_attorney=body.power_of_attorney,
        channel="agent" if agent else "api",
        access_scope=body.access_scope,
        name=body.name or None,
        postcode=body.postcode or None,
        declaration=body.declaration,
    )
    req = await submit(ctx, organisation_id, intake)
    applied = req.kind in UNVERIFIED_KINDS and req.state == State.COMPLETE.value
    message = OPTED_OUT if applied else RECEIVED
    return ReceivedOut(id=req.id, state=req.state, message=message, due_at=iso(req.due_at))


#: An opt-out needs no code and is applied before the answer (CCPA §7026).
OPTED_OUT = "Thank you. Your opt-out is applied: your personal information is not sold or shared."


@router.post(
    "/privacy/requests/{request_id}/verify",
    summary="Verify a request with its one-time code",
    dependencies=[limited("privacy_code")],
)
async def verify_request(ctx: Ctx, request_id: str, body: CodeIn) -> StateOut:
    req = await ctx.privacy.verify(request_id, body.code)
    return _state(req)


@router.post(
    "/privacy/requests/{request_id}/identity",
    summary="Add details that prove who you are (after the code)",
    dependencies=[limited("privacy_code")],
)
async def add_identity(ctx: Ctx, request_id: str, body: IdentityIn) -> StateOut:
    req = await ctx.privacy.add_identity_details(
        request_id,
        name=body.name or None,
        postcode=body.postcode or None,
        declaration=body.declaration,
        access_scope=body.access_scope,
    )
    return _state(req)


@router.post(
    "/privacy/requests/{request_id}/cancel",
    summary="Cancel your request before it is carried out (public)",
    dependencies=[limited("privacy_code")],
)
async def cancel_request(ctx: Ctx, request_id: str) -> StateOut:
    return _state(await ctx.privacy.withdraw(request_id))


def _state(req: PrivacyRequest) -> StateOut:
    return StateOut(id=req.id, state=req.state, needs=still_needed(req))


# ---- the client's staff and our admins -------------------------------------------------------


@router.get("/privacy/requests", summary="Privacy requests to decide (the queue, by due date)")
async def list_requests(
    ctx: Ctx,
    principal: CurrentPrincipal,
    state: Annotated[State | None, Query()] = None,
) -> QueueOut:
    rows = await ctx.privacy.queue(require_decider(principal), state.value if state else None)
    return QueueOut(requests=[RequestOut.model_validate(r) for r in rows])


@router.get("/privacy/requests/{request_id}", summary="A request with its history")
async def get_request(ctx: Ctx, principal: CurrentPrincipal, request_id: str) -> RequestDetailOut:
    return await _detail(ctx, require_decider(principal), request_id)


@router.post("/privacy/requests/{request_id}/approve", summary="Approve (and carry out) a request")
async def approve_request(ctx: Ctx, principal: CsrfPrincipal, request_id: str) -> RequestDetailOut:
    await ctx.privacy.approve(require_decider(principal), request_id)
    return await _detail(ctx, principal, request_id)


@router.post("/privacy/requests/{request_id}/deny", summary="Refuse a request, with a reason")
async def deny_request(
    ctx: Ctx, principal: CsrfPrincipal, request_id: str, body: DenyIn
) -> RequestDetailOut:
    await ctx.privacy.deny(require_decider(principal), request_id, body.reason, body.basis)
    return await _detail(ctx, principal, request_id)


@router.post("/privacy/requests/{request_id}/extend", summary="Extend the deadline once")
async def extend_request(
    ctx: Ctx, principal: CsrfPrincipal, request_id: str, body: ReasonIn
) -> RequestDetailOut:
    await ctx.privacy.extend(require_decider(principal), request_id, body.reason)
    return await _detail(ctx, principal, request_id)


async def _detail(ctx: AppContext, principal: Principal, request_id: str) -> RequestDetailOut:
    found: dict[str, Any] = await ctx.privacy.detail(principal, request_id)
    return RequestDetailOut.model_validate(found)
