"""Tracking ingestion (beacon-compatible) and what operators and clients read of it."""

from __future__ import annotations

import time
import weakref
from datetime import date
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from confide.clock import utcnow
from confide.errors import Forbidden, InvalidInput
from confide.sites import uk_stats
from confide.sites.origins import normalise_origin
from confide.sites.service import CACHE_SECONDS, SiteService
from confide.storage.scope import Scope
from confide.tracking.events import MAX_BODY_BYTES, parse_beacon, require_visit
from confide.tracking.service import Request as TrackedRequest
from confide.web.context import AppContext
from confide.web.deps import Ctx, CurrentPrincipal

router = APIRouter(tags=["tracking"])

#: The day we last changed how we honour the GPC signal (published in gpc.json).
GPC_LAST_UPDATE = "2026-11-26"


@router.get("/.well-known/gpc.json", summary="Global Privacy Control support")
async def gpc_json() -> JSONResponse:
    return JSONResponse(
        {"gpc": True, "lastUpdate": GPC_LAST_UPDATE},
        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=86400"},
    )


# --- the beacon: answered before the middleware stack (confide.web.beacon_asgi) ---------------
#
# ``POST /api/t`` is the busiest endpoint (a beacon per page view and every 15 s per visible
# tab), so it is not a route of the app at all: ``beacon_asgi.BeaconDispatch`` sends exactly
# that path here before FastAPI's middleware, routing and dependency machinery, and these
# functions only see what they need (the body, four headers, the client address). It is not in
# the OpenAPI schema; docs/tracking.md is its contract.

#: How long a browser may cache a preflight answer: 2 hours, the most Chromium honours
#: (Firefox would keep it for up to 24).
PREFLIGHT_MAX_AGE = 7200

#: (status, JSON body or b"", extra headers): what the ASGI adapter sends.
Reply = tuple[int, bytes, list[tuple[bytes, bytes]]]

_PREFLIGHT_HEADERS = [
    (b"access-control-allow-methods", b"POST"),
    (b"access-control-allow-headers", b"Content-Type"),
    (b"access-control-max-age", str(PREFLIGHT_MAX_AGE).encode()),
    (b"vary", b"Origin"),
]


async def ingest(
    ctx: AppContext, body: bytes, origin: str | None, request: TrackedRequest
) -> Reply:
    """Body: JSON (``text/plain`` accepted, as ``navigator.sendBeacon`` sends it):
    ``{site, visit, visitor?, consent?, events: [{type: pageview|ping|leave|optout, ...}]}``.
    Each event is validated on its own; refused events are listed with their reasons. A beacon
    refused as a whole (not JSON, a bad envelope, no valid event) is a 400 with the reason.
    Raises :class:`Forbidden` for a foreign origin and ``NotFound`` for an unknown site key."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _refused("The body is not valid JSON.")
    try:
        beacon = parse_beacon(data, utcnow(), visit_required=False)
    except InvalidInput as exc:
        return _refused(exc.message)
    site = await ctx.sites.by_key(beacon.site)
    if not ctx.sites.origin_allowed(site, origin):
        raise Forbidden("This origin may not send events for this site.")
    # A cookieless visit is the server's (R21); an anonymous count has none (R12).
    anonymous = beacon.consent is None and uk_stats.applies(site)
    if site.tracking_identity != "cookieless" and not anonymous:
        require_visit(beacon)
    cors = [
        (b"access-control-allow-origin", (origin or "").encode("latin-1")),
        (b"vary", b"Origin"),
    ]
    if not beacon.events:
        return _refused("No valid event.", beacon.rejected, cors)
    result = await ctx.tracking.ingest(site, beacon, request)
    payload = {
        "accepted": result.accepted,
        "rejected": result.rejected,
        "honoured": result.honoured,
        "invite": result.invite,
    }
    if result.seq is not None:  # cookieless sites: the page's number, for the widget's pings
        payload["seq"] = result.seq
    return 202, orjson.dumps(payload), cors


async def preflight(ctx: AppContext, origin: str | None) -> Reply:
    """The CORS preflight a browser sends before a cross-origin ``application/json`` beacon
    (``text/plain`` from ``sendBeacon`` needs none). It carries no body, so no site key: it is
    answered for an origin that some site allows, and the POST is then checked against its own
    site. Any other origin gets a 403 without CORS headers, which the browser treats as a no."""
    if not origin or not await _known_origins(ctx.sites).allows(origin):
        raise Forbidden("This origin may not send events.")
    return (
        204,
        b"",
        [(b"access-control-allow-origin", origin.encode("latin-1")), *_PREFLIGHT_HEADERS],
    )


def too_large() -> Reply:
    body = {"detail": f"The body is larger than {MAX_BODY_BYTES} bytes.", "code": "too_large"}
    return 413, orjson.dumps(body), []


def _refused(
    reason: str,
    rejected: list[dict[str, Any]] | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> Reply:
    body = orjson.dumps(
        {"detail": reason, "code": "bad_request", "accepted": 0, "rejected": rejected or []}
    )
    return 400, body, headers or []


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
