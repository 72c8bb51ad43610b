"""What an administrator does to accounts from the command line: list them, and set a new
password for someone who forgot theirs (the sign-in page tells them to ask us).

A new password also ends every session the account had and lifts a lockout: whoever knew the
old password, or holds a stolen session, is out.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select

from confide.accounts.models import ConsoleSession, Organisation, User
from confide.accounts.passwords import check_length, hash_password
from confide.accounts.service import normalise_email
from confide.audit import log as audit
from confide.errors import NotFound
from confide.storage.engine import Database
from confide.storage.scope import Scope


@dataclass(frozen=True)
class Account:
    email: str
    name: str
    role: str
    organisation: str | None


async def list_users(db: Database) -> list[Account]:
    async with db.session(Scope.system(), read_only=True) as s:
        rows = await s.execute(
            select(User.email, User.name, User.role, Organisation.name)
            .outerjoin(Organisation, Organisation.id == User.organisation_id)
            .order_by(User.role, User.email)
        )
        return [Account(*row) for row in rows.all()]


async def set_password(db: Database, email: str, password: str) -> int:
    """Returns how many sessions were ended."""
    check_length(password)
    address = normalise_email(email)
    async with db.session(Scope.system()) as s:
        user = await s.scalar(select(User).where(User.email == address))
        if user is None:
            raise NotFound("No such user.")
        user.password_hash = hash_password(password)
        user.failed_logins, user.locked_until = 0, None
        ended = await s.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id))
        await audit.append(
            s,
            audit.SYSTEM,
            "account.password_set",
            organisation_id=user.organisation_id,
            subject_kind="user",
            subject_ref=user.id,
            purpose="new password set by an administrator; sessions ended",
        )
        return int(ended.rowcount or 0)  # type: ignore[attr-defined]
