"""Tracking ingestion (beacon-compatible) and what operators and clients read of it."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from confide.clock import utcnow
from confide.errors import Forbidden, InvalidInput
from confide.tracking.events import MAX_BODY_BYTES, parse_beacon
from confide.tracking.service import Request as TrackedRequest
from confide.web.deps import Ctx, CurrentPrincipal

router = APIRouter(tags=["tracking"])

#: The day we last changed how we honour the GPC signal (published in gpc.json).
GPC_LAST_UPDATE = "2026-11-25"


@router.get("/.well-known/gpc.json", summary="Global Privacy Control support")
async def gpc_json() -> JSONResponse:
    return JSONResponse(
        {"gpc": True, "lastUpdate": GPC_LAST_UPDATE},
        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=86400"},
    )


@router.post(
    "/api/t",
    summary="Record page views (beacon)",
    status_code=202,
    responses={
        400: {"description": "Invalid beacon, with reasons"},
        403: {"description": "Origin not allowed"},
    },
)
async def ingest(request: Request, ctx: Ctx) -> Response:
    """Body: JSON (``text/plain`` accepted, as ``navigator.sendBeacon`` sends it):
    ``{site, visit, visitor?, consent?, events: [{type: pageview|ping|leave|optout, ...}]}``.
    Each event is validated on its own; refused events are listed with their reasons."""
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return _json({"detail": f"The body is larger than {MAX_BODY_BYTES} bytes."}, 413)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidInput("The body is not valid JSON.") from None
    beacon = parse_beacon(data, utcnow())
    site = await ctx.sites.by_key(beacon.site)
    origin = request.headers.get("origin")
    if not ctx.sites.origin_allowed(site, origin):
        raise Forbidden("This origin may not send events for this site.")
    cors = {"Access-Control-Allow-Origin": origin or "", "Vary": "Origin"}
    if not beacon.events:
        return _json(
            {"detail": "No valid event.", "accepted": 0, "rejected": beacon.rejected}, 400, cors
        )
    result = await ctx.tracking.ingest(
        site,
        beacon,
        TrackedRequest(
            ip=request.client.host if request.client else None,
            user_agent=request.headers.get("user-agent", ""),
            dnt=request.headers.get("dnt") == "1",
            gpc=request.headers.get("sec-gpc") == "1",
        ),
    )
    payload = {
        "accepted": result.accepted,
        "rejected": result.rejected,
        "honoured": result.honoured,
        "invite": result.invite,
    }
    return _json(payload, 202, cors)


def _json(payload: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers
    )


@router.get("/api/visitors/live", summary="Visitors on your sites right now")
async def live(ctx: Ctx, principal: CurrentPrincipal) -> list[dict[str, Any]]:
    return await ctx.tracking.live_visitors(principal.scope, principal.site_ids)


@router.get("/api/visits/{visit_id}", summary="A visit's usage data and navigation path")
async def visit(ctx: Ctx, principal: CurrentPrincipal, visit_id: str) -> dict[str, Any]:
    return await ctx.tracking.visit_detail(principal.scope, visit_id)


@router.get("/api/sites/{site_id}/stats", summary="A site's analytics for a date range")
async def stats(
    ctx: Ctx,
    principal: CurrentPrincipal,
    site_id: str,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    site = await ctx.sites.get(principal.scope, site_id)
    return await ctx.reports.site_report(principal.scope, site, start, end)
