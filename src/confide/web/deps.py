"""Request dependencies as typed aliases: the context, the signed-in principal, CSRF checks."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from confide.accounts.principal import Principal
from confide.errors import AuthenticationFailed, Forbidden
from confide.web.context import AppContext

SESSION_COOKIE = "confide_session"
LOGIN_CSRF_COOKIE = "confide_login_csrf"


def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AppContext, Depends(get_ctx)]


async def get_session(request: Request, ctx: Ctx) -> tuple[Principal, str]:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise AuthenticationFailed("Sign in first.")
    return await ctx.accounts.session_principal(token)


async def get_principal(
    session: Annotated[tuple[Principal, str], Depends(get_session)],
) -> Principal:
    return session[0]


CurrentSession = Annotated[tuple[Principal, str], Depends(get_session)]
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def tokens_match(expected: str | None, sent: str | None) -> bool:
    """Constant-time CSRF token check. As bytes: ``compare_digest`` refuses non-ASCII text, and a
    forged token may be anything (a 403, never a 500)."""
    return bool(expected and sent) and hmac.compare_digest(
        str(expected).encode(), str(sent).encode()
    )


async def require_csrf(
    session: CurrentSession, x_csrf_token: Annotated[str | None, Header()] = None
) -> Principal:
    """Unsafe API calls carry the session's CSRF token in ``X-CSRF-Token``."""
    if not tokens_match(session[1], x_csrf_token):
        raise Forbidden("Missing or wrong CSRF token (send the X-CSRF-Token header).")
    return session[0]


CsrfPrincipal = Annotated[Principal, Depends(require_csrf)]
