"""The ASGI application factory."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.routing import WebSocketRoute

from confide.logs import configure_logging
from confide.settings import Settings
from confide.web import errors
from confide.web.beacon_asgi import BeaconDispatch
from confide.web.context import AppContext
from confide.web.routes import (
    accountability_api,
    accountability_pages,
    api,
    api_docs,
    console,
    demo,
    health,
    leads,
    portal,
    portal_audit,
    portal_leads,
    portal_privacy,
    privacy_api,
    privacy_pages,
    tracking,
    widget,
)
from confide.web.security import SecurityHeaders
from confide.web.throttle import FormThrottle
from confide.web.ws.endpoints import console_socket, widget_socket

PACKAGE = Path(__file__).resolve().parent.parent
log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> BeaconDispatch:
    """The FastAPI app behind :class:`BeaconDispatch`, which answers the tracking beacon
    (``/api/t``) before the middleware stack and hands everything else to the app."""
    settings = settings or Settings()
    configure_logging(settings.log_level)
    ctx = AppContext.build(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await ctx.start()
        # Everything loaded at start-up lives for the process: keep it out of the collector's
        # generations, so a full collection walks only what requests create (shorter pauses).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await ctx.stop()

    app = FastAPI(
        title="Confide",
        version="1",
        summary="Privacy-first live chat and lead capture",
        lifespan=lifespan,
        docs_url=None,  # /api/docs is ours (routes/api_docs.py): no CDN, no inline script
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.state.form_throttle = FormThrottle(
        settings.public_form_per_hour, settings.public_form_burst
    )
    app.state.templates = Jinja2Templates(directory=PACKAGE / "templates")
    app.add_middleware(SecurityHeaders, hsts=settings.secure_cookies)
    errors.install(app)
    app.mount("/static", StaticFiles(directory=PACKAGE / "static"), name="static")
    for router in (
        health.router,
        api_docs.router,
        widget.router,
        console.router,
        portal.router,
        portal_leads.router,
        portal_audit.router,
        accountability_pages.router,
        portal_privacy.router,
        api.router,
        accountability_api.router,
        leads.router,
        privacy_api.router,
        privacy_pages.router,
        tracking.router,
        demo.router,
    ):
        app.include_router(router)
    # Plain Starlette routes: FastAPI's dependency machinery would keep its frames and exit
    # stacks alive for every socket's lifetime (about 12 KB per idle connection).
    app.router.routes.append(WebSocketRoute("/ws/widget", widget_socket))
    app.router.routes.append(WebSocketRoute("/ws/console", console_socket))

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console", status_code=303)

    return BeaconDispatch(app, ctx, hsts=settings.secure_cookies)
