"""The JSON API of the processor's accountability records (under /api). Thin: authenticate,
parse, call :class:`~confide.accountability.service.Accountability`, return.

Our admins change things (sub-processors, breaches, policy versions), with the CSRF header on
every change. A client's staff read their own organisation's record of processing, inbox and
breach notices, and record objections for their organisation. Another organisation's record is
404, like a missing one. The newest policy version is public.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from confide.accountability.breaches import TEXT_MAX
from confide.accountability.policies import TEXT_MAX as POLICY_MAX
from confide.accountability.service import Accountability
from confide.web.deps import CsrfPrincipal, Ctx, CurrentPrincipal
from confide.web.routes.widget import public_base

router = APIRouter(prefix="/api", tags=["accountability"])


def get_accountability(ctx: Ctx) -> Accountability:
    return Accountability(ctx.db, ctx.settings)


Acct = Annotated[Accountability, Depends(get_accountability)]


def portal_link(request: Request, ctx: Ctx) -> str:
    return public_base(request, ctx) + "/portal/inbox"


# ---- record of processing --------------------------------------------------------------------


@router.get("/ropa", summary="The record of processing: every controller you can see")
async def ropa_all(acct: Acct, principal: CurrentPrincipal) -> dict[str, Any]:
    return await acct.ropa.all(principal)


@router.get("/ropa/{organisation_id}", summary="One organisation's record of processing")
async def ropa_one(acct: Acct, principal: CurrentPrincipal, organisation_id: str) -> dict[str, Any]:
    return await acct.ropa.for_organisation(principal, organisation_id)


# ---- sub-processors --------------------------------------------------------------------------


class SubProcessorIn(BaseModel):
    model_config = {"extra": "forbid"}
    name: str = Field(max_length=120)
    region: str = Field(max_length=8)
    purpose: str = Field(max_length=2000)
    categories: list[Annotated[str, Field(max_length=80)]] = Field(max_length=40)
    #: With a time zone; default 30 days from now, never sooner than 14.
    effective_at: datetime | None = None


class ObjectionIn(BaseModel):
    model_config = {"extra": "forbid"}
    reason: str = Field(max_length=2000)


@router.get("/subprocessors", summary="Sub-processors, with the objections you may see")
async def list_subprocessors(acct: Acct, principal: CurrentPrincipal) -> list[dict[str, Any]]:
    return await acct.subprocessors.listing(principal)


@router.post("/subprocessors", status_code=201, summary="Announce a new sub-processor")
async def add_subprocessor(
    request: Request, ctx: Ctx, acct: Acct, principal: CsrfPrincipal, body: SubProcessorIn
) -> dict[str, Any]:
    done = await acct.subprocessors.add(
        principal,
        name=body.name,
        region=body.region,
        purpose=body.purpose,
        categories=body.categories,
        effective_at=body.effective_at,
        portal_url=portal_link(request, ctx),
    )
    return {
        "subprocessor": done.subprocessor,
        "organisations": done.organisations,
        "emails_sent": done.emails_sent,
        "emails_failed": done.emails_failed,
    }


@router.post(
    "/organisations/{organisation_id}/subprocessors/{subprocessor_id}/objections",
    status_code=201,
    summary="Record your organisation's objection to a sub-processor",
)
async def object_to_subprocessor(
    acct: Acct,
    principal: CsrfPrincipal,
    organisation_id: str,
    subprocessor_id: str,
    body: ObjectionIn,
) -> dict[str, Any]:
    return await acct.subprocessors.object(principal, organisation_id, subprocessor_id, body.reason)


# ---- breaches --------------------------------------------------------------------------------


class BreachIn(BaseModel):
    model_config = {"extra": "forbid"}
    nature: str = Field(max_length=TEXT_MAX)
    categories: list[Annotated[str, Field(max_length=80)]] = Field(max_length=40)
    subjects_approx: int = Field(ge=0, le=10**9)
    records_approx: int = Field(ge=0, le=10**10)
    consequences: str = Field(max_length=TEXT_MAX)
    measures: str = Field(max_length=TEXT_MAX)
    contact_name: str = Field(max_length=200)
    contact_email: str = Field(max_length=320)
    discovered_at: datetime
    organisation_ids: list[Annotated[str, Field(max_length=64)]] = Field(max_length=10_000)


@router.get("/breaches", summary="The breach register (clients: breaches notified to them)")
async def list_breaches(acct: Acct, principal: CurrentPrincipal) -> list[dict[str, Any]]:
    return await acct.breaches.listing(principal)


@router.post("/breaches", status_code=201, summary="Record a personal data breach")
async def record_breach(acct: Acct, principal: CsrfPrincipal, body: BreachIn) -> dict[str, Any]:
    return await acct.breaches.record(principal, **body.model_dump())


@router.get("/breaches/{breach_id}", summary="One breach, with the time to notify each client")
async def get_breach(acct: Acct, principal: CurrentPrincipal, breach_id: str) -> dict[str, Any]:
    return await acct.breaches.get(principal, breach_id)


@router.post("/breaches/{breach_id}/notify", summary="Notify every affected organisation")
async def notify_breach(
    request: Request, ctx: Ctx, acct: Acct, principal: CsrfPrincipal, breach_id: str
) -> dict[str, Any]:
    return await acct.breaches.notify(principal, breach_id, portal_url=portal_link(request, ctx))


# ---- policy versions -------------------------------------------------------------------------


class PolicyIn(BaseModel):
    model_config = {"extra": "forbid"}
    version: str = Field(max_length=40)
    text: str = Field(max_length=POLICY_MAX)
    title: str | None = Field(default=None, max_length=200)
    #: What changed, in a sentence or two (goes into the emails and inbox messages).
    summary: str | None = Field(default=None, max_length=1000)


@router.get("/policy-versions", summary="The newest privacy policy version, and all versions")
async def policy_versions(acct: Acct) -> dict[str, Any]:
    versions = await acct.policies.versions()
    return {"latest": await acct.policies.latest() if versions else None, "versions": versions}


@router.post("/policy-versions", status_code=201, summary="Publish a new policy version")
async def publish_policy(
    request: Request, ctx: Ctx, acct: Acct, principal: CsrfPrincipal, body: PolicyIn
) -> dict[str, Any]:
    done = await acct.policies.publish(
        principal,
        version=body.version,
        text=body.text,
        title=body.title,
        summary=body.summary,
        base_url=public_base(request, ctx),
    )
    return {
        "policy": done.policy,
        "organisations": done.organisations,
        "subscribers": done.subscribers,
        "emails_sent": done.emails_sent,
        "emails_failed": done.emails_failed,
    }


# ---- inbox -----------------------------------------------------------------------------------


@router.get("/inbox", summary="Your organisation's portal inbox (admins: name the organisation)")
async def inbox(
    acct: Acct,
    principal: CurrentPrincipal,
    organisation_id: Annotated[str | None, Query(max_length=64)] = None,
) -> list[dict[str, object]]:
    items = await acct.inbox.messages(principal, organisation_id)
    return [i.as_dict() for i in items]
