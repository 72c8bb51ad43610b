"""The client portal's audit trail: who saw or changed what of the organisation's data, when, why.

Read from the hash-chained audit log (:mod:`confide.audit.log`) in the user's scope, so a client
user sees their own organisation's entries only; our admins see every entry. Operators do not
get the page (the trail is the controller's and our compliance record).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from confide.accounts.models import Role, User
from confide.audit.log import AuditLog
from confide.errors import Forbidden
from confide.storage.scope import Scope
from confide.web.deps import Ctx
from confide.web.routes.console import _page, _signed_in
from confide.web.routes.portal import _error
from confide.web.signin_redirect import to_sign_in

router = APIRouter(prefix="/portal", include_in_schema=False)
PAGE = 100

#: Actions in words (the raw action name is shown too, for auditors).
ACTIONS = {
    "personal_data.view": "Viewed contact details in a chat",
    "transcript.view": "Read a chat transcript",
    "lead.view": "Opened a lead",
    "lead.list": "Listed leads",
    "lead.export": "Exported leads (CSV)",
    "lead.forward": "Passed a lead on (at the visitor's request)",
    "lead.created.sent": "Lead delivered",
    "lead.created.failed": "Lead delivery failed",
    "lead.corrected.sent": "Corrected lead delivered",
    "lead.erased.sent": "Erasure notice delivered",
    "key.destroyed": "Encryption key destroyed",
    "config.destination.add": "Destination added",
    "legal_hold.placed": "Legal hold placed",
    "legal_hold.released": "Legal hold released",
    "retention.erased": "Erased at the end of its retention period",
    "conversation.list": "Listed chats",
    "conversation.search": "Searched chats",
}


def _label(action: str) -> str:
    if action.startswith("privacy_request."):
        return "Privacy request: " + action.split(".", 1)[1].replace("_", " ")
    return ACTIONS.get(action, action.replace(".", " ").replace("_", " ").capitalize())


def _row(entry: dict[str, Any], people: dict[str, str]) -> dict[str, Any]:
    return {
        **entry,
        "label": _label(entry["action"]),
        "when": datetime.fromisoformat(entry["at"]),
        "who": people.get(entry["actor_id"] or "", "Confide (system)")
        if entry["actor_id"]
        else _WITHOUT_ACCOUNT.get(entry["actor_role"], "Confide (system)"),
    }


#: Who acted without an account: the person the data is about, or our own tasks.
_WITHOUT_ACCOUNT = {"visitor": "The visitor", "data_subject": "The person (by their link)"}


@router.get("/audit", response_class=HTMLResponse)
async def trail(
    request: Request, ctx: Ctx, before: Annotated[int | None, Query(ge=1)] = None
) -> Response:
    session = await _signed_in(request, ctx)
    if session is None:
        return to_sign_in(request)
    principal = session[0]
    if principal.role is Role.OPERATOR:
        return _error(request, Forbidden("The audit trail is the client's and our admins'."))
    entries = await AuditLog(ctx.db).trail(principal.scope, limit=PAGE + 1, before=before)
    people = await _names(ctx, {e["actor_id"] for e in entries if e["actor_id"]})
    rows = [_row(e, people) for e in entries[:PAGE]]
    older = rows[-1]["seq"] if len(entries) > PAGE else None
    return _page(
        request,
        "portal/audit.html",
        {
            "user": principal,
            "csrf_token": session[1],
            "entries": rows,
            "older": older,
            "newest": before is None,
        },
    )


async def _names(ctx: Any, ids: set[str]) -> dict[str, str]:
    """Who acted: names of the users in these entries (our staff included, by name)."""
    if not ids:
        return {}
    async with ctx.db.session(Scope.system(), read_only=True) as s:
        rows = await s.execute(select(User.id, User.name).where(User.id.in_(ids)))
        return {r[0]: r[1] for r in rows.all()}
