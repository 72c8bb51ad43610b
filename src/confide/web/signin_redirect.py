"""Where sign-in sends people: back to the page they asked for, or to the console.

A client's sales manager who opens ``/portal/leads`` and signs in lands there, not in the
operators' console. The target travels as ``?next=`` and is only ever a path on this server
(an open redirect would let a phishing link bounce through our sign-in page).
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse

from confide.accounts.principal import Principal

LOGIN_PATH = "/console/login"


def safe_next(value: str | None) -> str | None:
    """``value`` if it is a path on this server (``/portal/leads?status=new``), else None."""
    if not value or len(value) > 500 or not value.startswith("/"):
        return None
    if value.startswith("//") or "\\" in value or any(ord(ch) < 0x20 for ch in value):
        return None
    if value.split("?", 1)[0].rstrip("/") == LOGIN_PATH:
        return None
    return value


def after_sign_in(_principal: Principal, wanted: str | None) -> str:
    """The page asked for, else the console: client staff chat there too, and reach their
    portal from its navigation."""
    return safe_next(wanted) or "/console"


def to_sign_in(request: Request) -> RedirectResponse:
    """The sign-in page, coming back here afterwards."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if here == "/console":  # the default landing page needs no return ticket
        return RedirectResponse(LOGIN_PATH, status_code=303)
    return RedirectResponse(f"{LOGIN_PATH}?next={quote(here, safe='')}", status_code=303)
