"""The JSON API for lead capture, consent, leads, destinations and deliveries (under /api/)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from confide.accounts.models import Role
from confide.audit.log import Actor
from confide.errors import Forbidden
from confide.leads.records import person_dict
from confide.web.deps import CsrfPrincipal, Ctx, CurrentPrincipal

router = APIRouter(prefix="/api", tags=["leads"])


class Details(BaseModel):
    """Contact fields to set; a field left out is unchanged, null clears it."""

    model_config = {"extra": "forbid"}
    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=200)
    address: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=200)
    postcode: str | None = Field(default=None, max_length=200)
    country: str | None = Field(default=None, max_length=200)


class Age(BaseModel):
    age: int = Field(ge=1, le=129)


class VehicleIn(BaseModel):
    model_config = {"extra": "forbid"}
    interest: str | None = None
    status: Literal["new", "used"] | None = None
    year: str | None = Field(default=None, max_length=4)
    make: str | None = Field(default=None, max_length=60)
    model: str | None = Field(default=None, max_length=80)
    stock: str | None = Field(default=None, max_length=40)


class LeadIn(BaseModel):
    model_config = {"extra": "forbid"}
    purpose: str
    vehicle: VehicleIn | None = None
    trade_in: VehicleIn | None = None
    comments: str | None = Field(default=None, max_length=2000)


class StatusIn(BaseModel):
    status: Literal["new", "contacted", "closed"]


class ForwardIn(BaseModel):
    recipient_name: str = Field(max_length=200)
    recipient_contact: str = Field(max_length=200)
    reason: str = Field(max_length=2000)


class DestinationIn(BaseModel):
    model_config = {"extra": "forbid"}
    organisation_id: str | None = None
    site_id: str | None = None
    name: str | None = Field(default=None, max_length=120)
    kind: Literal["email", "webhook"]
    target: str = Field(max_length=500)
    region: str = Field(max_length=8)


@router.get("/conversations/{conversation_id}/lead-panel", summary="Captured details and consent")
async def lead_panel(ctx: Ctx, principal: CurrentPrincipal, conversation_id: str) -> dict[str, Any]:
    return await ctx.lead_records.panel(principal, conversation_id)


@router.put("/conversations/{conversation_id}/person", summary="Capture or edit details")
async def put_person(
    ctx: Ctx, principal: CsrfPrincipal, conversation_id: str, body: Details
) -> dict[str, Any]:
    values = body.model_dump(exclude_unset=True)
    person = await ctx.leads.update_details(principal, conversation_id, values)
    return person_dict(person) or {}


@router.post("/conversations/{conversation_id}/age", summary="Record the visitor's stated age")
async def post_age(
    ctx: Ctx, principal: CsrfPrincipal, conversation_id: str, body: Age
) -> dict[str, Any]:
    return {"minor": await ctx.leads.record_age(principal, conversation_id, body.age)}


@router.post(
    "/conversations/{conversation_id}/consent-request", summary="Ask the visitor for consent"
)
async def request_consent(
    ctx: Ctx, principal: CsrfPrincipal, conversation_id: str
) -> dict[str, Any]:
    state = await ctx.leads.request_consent(principal, conversation_id)
    frame = state.frame(conversation_id)
    frame.pop("type")
    return frame


@router.post("/conversations/{conversation_id}/leads", status_code=201, summary="Create a lead")
async def create_lead(
    ctx: Ctx, principal: CsrfPrincipal, conversation_id: str, body: LeadIn
) -> dict[str, Any]:
    lead = await ctx.leads.create_lead(
        principal,
        conversation_id,
        purpose=body.purpose,
        vehicle=body.vehicle.model_dump(exclude_none=True) if body.vehicle else None,
        trade_in=body.trade_in.model_dump(exclude_none=True) if body.trade_in else None,
        comments=body.comments,
    )
    return await ctx.lead_records.detail(principal, lead.id)


@router.post("/leads/{lead_id}/deliver", summary="Send a lead (needs the visitor's consent)")
async def deliver_lead(ctx: Ctx, principal: CsrfPrincipal, lead_id: str) -> dict[str, Any]:
    lead = await ctx.leads.deliver(principal, lead_id)
    return await ctx.lead_records.detail(principal, lead.id)


@router.get("/leads", summary="Leads you can see (clients: released with consent)")
async def list_leads(
    ctx: Ctx,
    principal: CurrentPrincipal,
    status: Annotated[str | None, Query(max_length=12)] = None,
    site: Annotated[str | None, Query(max_length=64)] = None,
    page: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> dict[str, Any]:
    leads, has_next = await ctx.lead_records.list(principal, status=status, site_id=site, page=page)
    return {"leads": leads, "page": page, "has_next": has_next}


@router.get("/leads.csv", summary="Leads as CSV", response_class=Response)
async def leads_csv(
    ctx: Ctx,
    principal: CurrentPrincipal,
    status: Annotated[str | None, Query(max_length=12)] = None,
) -> Response:
    body = await ctx.lead_records.csv_export(principal, status=status)
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="leads.csv"'},
    )


@router.get("/leads/{lead_id}", summary="A lead with transcript, visit, consent and deliveries")
async def get_lead(ctx: Ctx, principal: CurrentPrincipal, lead_id: str) -> dict[str, Any]:
    return await ctx.lead_records.detail(principal, lead_id)


@router.patch("/leads/{lead_id}", summary="Move a lead through new → contacted → closed")
async def patch_lead(
    ctx: Ctx, principal: CsrfPrincipal, lead_id: str, body: StatusIn
) -> dict[str, Any]:
    return await ctx.lead_records.set_status(principal, lead_id, body.status)


@router.post("/leads/{lead_id}/forward", status_code=201, summary="Record an onward transfer")
async def forward_lead(
    ctx: Ctx, principal: CsrfPrincipal, lead_id: str, body: ForwardIn
) -> dict[str, Any]:
    return await ctx.lead_records.forward(
        principal,
        lead_id,
        recipient_name=body.recipient_name,
        recipient_contact=body.recipient_contact,
        reason=body.reason,
    )


@router.get("/deliveries", summary="Lead deliveries (state=dead for the dead-letter queue)")
async def list_deliveries(
    ctx: Ctx,
    principal: CurrentPrincipal,
    state: Annotated[str | None, Query(max_length=10)] = None,
) -> list[dict[str, Any]]:
    return await ctx.delivery_admin.jobs(principal, state)


@router.post("/deliveries/{job_id}/retry", summary="Retry a dead-lettered delivery")
async def retry_delivery(ctx: Ctx, principal: CsrfPrincipal, job_id: int) -> dict[str, Any]:
    result = await ctx.delivery_admin.retry(principal, job_id)
    ctx.delivery.notify()
    return result


@router.get("/destinations", summary="Where leads are delivered")
async def list_destinations(ctx: Ctx, principal: CurrentPrincipal) -> list[dict[str, Any]]:
    return await ctx.delivery_admin.list_destinations(principal.scope)


@router.post("/destinations", status_code=201, summary="Add an email or webhook destination")
async def add_destination(
    ctx: Ctx, principal: CsrfPrincipal, body: DestinationIn
) -> dict[str, Any]:
    if principal.role is Role.OPERATOR:
        raise Forbidden("Destinations are set by the client or the Confide team.")
    org = body.organisation_id or principal.organisation_id
    if org is None:
        raise Forbidden("Name the organisation (organisation_id).")
    created = await ctx.delivery_admin.add_destination(
        principal.scope,
        organisation_id=org,
        kind=body.kind,
        target=body.target,
        region=body.region,
        name=body.name,
        site_id=body.site_id,
        actor=Actor.of(principal),
    )
    return {**created.destination, "secret": created.secret}
