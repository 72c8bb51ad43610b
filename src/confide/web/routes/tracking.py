"""Tracking ingestion (beacon-compatible) and what operators and clients read of it."""

from __future__ import annotations

import time
import weakref
from datetime import date
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.routing import Route

from confide.clock import utcnow
from confide.errors import Forbidden, InvalidInput
from confide.sites.origins import normalise_origin
from confide.sites.service import CACHE_SECONDS, SiteService
from confide.storage.scope import Scope
from confide.tracking.events import MAX_BODY_BYTES, parse_beacon
from confide.tracking.service import Request as TrackedRequest
from confide.web.context import AppContext
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


# --- the beacon: plain Starlette routes (registered in confide.web.app) ----------------------
#
# ``POST /api/t`` is the busiest endpoint (a beacon per page view and every 15 s per visible
# tab), so it skips FastAPI's dependency injection and is matched before every other route:
# that halved the server's CPU per beacon (bench/ingest_load.py, 1 event per request: 708 ->
# 374 us). It is not in the OpenAPI schema; docs/tracking.md is its contract.

#: How long a browser may cache a preflight answer: 2 hours, the most Chromium honours
#: (Firefox would keep it for up to 24).
PREFLIGHT_MAX_AGE = 7200


async def ingest(request: Request) -> Response:
    """Body: JSON (``text/plain`` accepted, as ``navigator.sendBeacon`` sends it):
    ``{site, visit, visitor?, consent?, events: [{type: pageview|ping|leave|optout, ...}]}``.
    Each event is validated on its own; refused events are listed with their reasons. A beacon
    refused as a whole (not JSON, a bad envelope, no valid event) is a 400 with the reason."""
    ctx: AppContext = request.app.state.ctx
    body = await _read_body(request)
    if body is None:
        return _json({"detail": f"The body is larger than {MAX_BODY_BYTES} bytes."}, 413)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _refused("The body is not valid JSON.")
    try:
        beacon = parse_beacon(data, utcnow())
    except InvalidInput as exc:
        return _refused(exc.message)
    site = await ctx.sites.by_key(beacon.site)
    origin = request.headers.get("origin")
    if not ctx.sites.origin_allowed(site, origin):
        raise Forbidden("This origin may not send events for this site.")
    cors = {"Access-Control-Allow-Origin": origin or "", "Vary": "Origin"}
    if not beacon.events:
        return _refused("No valid event.", beacon.rejected, cors)
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


async def preflight(request: Request) -> Response:
    """The CORS preflight a browser sends before a cross-origin ``application/json`` beacon
    (``text/plain`` from ``sendBeacon`` needs none). It carries no body, so no site key: it is
    answered for an origin that some site allows, and the POST is then checked against its own
    site. Any other origin gets a 403 without CORS headers, which the browser treats as a no."""
    ctx: AppContext = request.app.state.ctx
    origin = request.headers.get("origin")
    if not origin or not await _known_origins(ctx.sites).allows(origin):
        raise Forbidden("This origin may not send events.")
    return Response(
        status_code=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE),
            "Vary": "Origin",
        },
    )


routes = [
    Route("/api/t", ingest, methods=["POST"]),
    Route("/api/t", preflight, methods=["OPTIONS"]),
]


async def _read_body(request: Request) -> bytes | None:
    """The body, or None when it is over MAX_BODY_BYTES: refused on its ``Content-Length``
    before a byte is read, else (a chunked body) as soon as the stream passes the limit. Reading
    first and measuring after would let a client hold a request and its memory for any size."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _refused(
    reason: str,
    rejected: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return _json({"detail": reason, "accepted": 0, "rejected": rejected or []}, 400, headers)


def _json(payload: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers
    )


class _KnownOrigins:
    """Every origin some site allows, for preflights (which name no site), re-read after
    CACHE_SECONDS like the site-key cache, so a new site's preflights work within that time."""

    def __init__(self, sites: SiteService) -> None:
        self._sites = sites
        self._origins: frozenset[str] = frozenset()
        self._expires = 0.0

    async def allows(self, origin: str) -> bool:
        try:
            wanted = normalise_origin(origin)
        except InvalidInput:
            return False
        if time.monotonic() >= self._expires:
            listed = await self._sites.list_sites(Scope.system())
            self._origins = frozenset(o for site, _org in listed for o in site.allowed_origins)
            self._expires = time.monotonic() + CACHE_SECONDS
        return wanted in self._origins


_ORIGINS: weakref.WeakKeyDictionary[SiteService, _KnownOrigins] = weakref.WeakKeyDictionary()


def _known_origins(sites: SiteService) -> _KnownOrigins:
    known = _ORIGINS.get(sites)
    if known is None:
        known = _ORIGINS[sites] = _KnownOrigins(sites)
    return known


# --- what operators and clients read ---------------------------------------------------------


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
