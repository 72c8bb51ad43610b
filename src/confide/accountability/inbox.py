"""Each client organisation's portal inbox (policy 6.3: "the private messaging system").

Messages are written in the same transaction as the change they announce (:func:`post`), so a
sub-processor, breach notice or policy version never exists without its message, nor the other
way round. Reads are per user: opening the inbox marks what it showed as read for that user.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from confide.accountability.guards import reader_organisation
from confide.accountability.models import InboxMessage, InboxRead
from confide.accounts.models import Role
from confide.accounts.principal import Principal
from confide.clock import utcnow
from confide.ids import new_id
from confide.storage.engine import Database
from confide.storage.scope import Scope

KINDS = ("subprocessor", "breach", "policy")
#: The inbox shows the newest messages; older ones stay in the table (and in the audit trail).
PAGE = 100


def post(
    s: AsyncSession,
    *,
    organisation_id: str,
    kind: str,
    ref: str | None,
    title: str,
    body: str,
    at: datetime,
) -> InboxMessage:
    """Add a message inside the caller's unit of work (it commits with the change)."""
    assert kind in KINDS, kind
    message = InboxMessage(
        id=new_id(),
        organisation_id=organisation_id,
        kind=kind,
        ref=ref,
        title=title[:200],
        body=body,
        created_at=at,
    )
    s.add(message)
    return message


@dataclass(frozen=True)
class Item:
    id: str
    organisation_id: str
    kind: str
    ref: str | None
    title: str
    body: str
    created_at: datetime
    #: When this user first saw it (None: new to them).
    read_at: datetime | None

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "organisation_id": self.organisation_id,
            "kind": self.kind,
            "ref": self.ref,
            "title": self.title,
            "body": self.body,
            "created_at": self.created_at.isoformat(),
            "read_at": self.read_at.isoformat() if self.read_at else None,
        }


class Inbox:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def messages(
        self, principal: Principal, organisation_id: str | None = None, *, mark_read: bool = True
    ) -> list[Item]:
        """The organisation's messages, newest first. A client user's own organisation by
        default; our admins name one. Marks them read for a client user."""
        org = await reader_organisation(self.db, principal, organisation_id)
        scope = Scope.organisation(org)
        async with self.db.session(scope, read_only=True) as s:
            rows = (
                await s.execute(
                    select(InboxMessage, InboxRead.read_at)
                    .outerjoin(
                        InboxRead,
                        (InboxRead.message_id == InboxMessage.id)
                        & (InboxRead.user_id == principal.user_id),
                    )
                    .order_by(InboxMessage.created_at.desc(), InboxMessage.id)
                    .limit(PAGE)
                )
            ).all()
        items = [
            Item(m.id, m.organisation_id, m.kind, m.ref, m.title, m.body, m.created_at, read)
            for m, read in rows
        ]
        unread = [i.id for i in items if i.read_at is None]
        if mark_read and unread and principal.role is Role.CLIENT:
            await self._mark_read(scope, org, principal.user_id, unread)
        return items

    async def unread(self, principal: Principal) -> int:
        """How many messages this client user has not seen (0 for our staff)."""
        if principal.role is not Role.CLIENT or principal.organisation_id is None:
            return 0
        scope = Scope.organisation(principal.organisation_id)
        seen = select(InboxRead.message_id).where(InboxRead.user_id == principal.user_id)
        async with self.db.session(scope, read_only=True) as s:
            count = await s.scalar(
                select(func.count()).select_from(InboxMessage).where(InboxMessage.id.not_in(seen))
            )
        return int(count or 0)

    async def _mark_read(self, scope: Scope, org: str, user_id: str, ids: list[str]) -> None:
        now = utcnow()
        try:
            async with self.db.session(scope) as s:
                s.add_all(
                    InboxRead(message_id=i, organisation_id=org, user_id=user_id, read_at=now)
                    for i in ids
                )
        except IntegrityError:
            # The same user opened the inbox twice at once: the other request recorded the
            # reads first, and the first time seen is the one we keep.
            pass
