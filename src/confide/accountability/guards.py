"""Who may do what with the accountability records, as named guards.

- Our admins (and the command line on the server, ``principal=None``) change everything.
- A client's staff read their own organisation's record of processing, inbox and breach notices,
  and record objections for their organisation.
- Operators (our managed chat team) answer chats; these records are not theirs.

The tenant rule first, the role second: an organisation outside your scope is "not found",
exactly like a missing one, before any "not allowed".
"""

from __future__ import annotations

from sqlalchemy import select

from confide.accounts.models import Organisation, Role
from confide.accounts.principal import Principal
from confide.audit import log as audit
from confide.errors import Forbidden, InvalidInput, NotFound
from confide.storage.engine import Database
from confide.storage.scope import Scope


def require_staff(principal: Principal | None) -> audit.Actor:
    """Our admins, or the command line; returns who to name in the audit log."""
    if principal is not None and principal.role is not Role.ADMIN:
        raise Forbidden("Only the Confide team can change this.")
    return audit.Actor.of(principal)


def require_reader(principal: Principal) -> None:
    if principal.role not in (Role.ADMIN, Role.CLIENT):
        raise Forbidden("This is for your organisation's staff and the Confide team.")


def require_client(principal: Principal) -> str:
    """A client user acting for their organisation; returns its id."""
    if principal.role is not Role.CLIENT or principal.organisation_id is None:
        raise Forbidden("Only a client organisation's staff can do this for it.")
    return principal.organisation_id


async def reader_organisation(
    db: Database, principal: Principal, organisation_id: str | None
) -> str:
    """The organisation whose records ``principal`` asked for (their own by default)."""
    if organisation_id is None:
        if principal.organisation_id is None:
            if principal.role is Role.ADMIN:
                raise InvalidInput("Choose an organisation (organisation_id).")
            require_reader(principal)
        organisation_id = principal.organisation_id
    assert organisation_id is not None
    if not principal.scope.allows(organisation_id):
        raise NotFound("No such organisation.")
    async with db.session(Scope.system(), read_only=True) as s:
        exists = await s.scalar(select(Organisation.id).where(Organisation.id == organisation_id))
    if exists is None:
        raise NotFound("No such organisation.")
    require_reader(principal)
    return organisation_id
