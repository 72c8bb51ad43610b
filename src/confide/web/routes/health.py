"""Load-balancer probes: /healthz (the process is up), /readyz (the database answers)."""

from __future__ import annotations

import os

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from confide.web.deps import Ctx

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database is reachable", response_model=None)
async def readyz(ctx: Ctx) -> JSONResponse:
    unavailable = JSONResponse(
        {"status": "unavailable", "database": "unreachable"}, status_code=503
    )
    if _sqlite_file_gone(ctx.db.sqlite_file):
        # Open connections keep working on a deleted file (its inode lives on), so "SELECT 1"
        # would pass while everything written from now on is lost with the last connection.
        return unavailable
    try:
        async with ctx.db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        return unavailable
    return JSONResponse({"status": "ok", "database": "ok"})


def _sqlite_file_gone(path: str | None) -> bool:
    """One stat of a local file: microseconds, not worth a thread hop."""
    return path is not None and not os.path.exists(path)
