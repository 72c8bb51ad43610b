"""Writing and verifying the audit chain.

Each entry's hash is SHA-256 over the previous entry's hash and the entry's canonical JSON, and
sequence numbers have no gaps: changing an entry breaks its hash, removing one leaves a gap and
breaks the next link, reordering breaks the links. Appends are serialised (the write lock on
SQLite, an advisory lock on PostgreSQL) so the chain never forks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from confide.accounts.principal import Principal
from confide.audit.models import AuditEntry
from confide.clock import utcnow
from confide.storage.engine import Database
from confide.storage.scope import Scope

GENESIS = "0" * 64
_LOCK_KEY = 0x636F6E666964  # "confid": one chain, one lock


def entry_hash(prev: str, body: dict[str, Any]) -> str:
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev.encode() + canonical).hexdigest()


def body_of(e: AuditEntry) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "at": e.at.isoformat(),
        "actor_id": e.actor_id,
        "actor_role": e.actor_role,
        "organisation_id": e.organisation_id,
        "action": e.action,
        "subject_kind": e.subject_kind,
        "subject_ref": e.subject_ref,
        "fields": list(e.fields or []),
        "purpose": e.purpose,
    }


@dataclass(frozen=True)
class Actor:
    id: str | None
    role: str

    @classmethod
    def of(cls, principal: Principal | None) -> Actor:
        if principal is None:
            return cls(None, "system")
        return cls(principal.user_id, principal.role.value)


SYSTEM = Actor(None, "system")


async def append(
    s: AsyncSession,
    actor: Actor,
    action: str,
    *,
    organisation_id: str | None = None,
    subject_kind: str | None = None,
    subject_ref: str | None = None,
    fields: list[str] | None = None,
    purpose: str | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Append one entry inside the caller's write transaction (it commits with the action)."""
    if s.get_bind().dialect.name == "postgresql":
        await s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    last = (
        await s.execute(
            select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
        )
    ).first()
    seq, prev = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS)
    entry = AuditEntry(
        seq=seq,
        at=at or utcnow(),
        actor_id=actor.id,
        actor_role=actor.role,
        organisation_id=organisation_id,
        action=action,
        subject_kind=subject_kind,
        subject_ref=subject_ref,
        fields=sorted(fields or []),
        purpose=purpose,
        prev_hash=prev,
        hash="",
    )
    entry.hash = entry_hash(prev, body_of(entry))
    s.add(entry)
    await s.flush()
    return entry


class AuditLog:
    """Records accesses that are not themselves writes (a view, an export) in their own unit."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, actor: Actor, action: str, **kw: Any) -> None:
        async with self.db.session(Scope.system()) as s:
            await append(s, actor, action, **kw)

    async def trail(
        self, scope: Scope, *, limit: int = 200, before: int | None = None
    ) -> list[dict[str, Any]]:
        async with self.db.session(scope, read_only=True) as s:
            q = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(limit)
            if before is not None:
                q = q.where(AuditEntry.seq < before)
            return [{**body_of(e), "hash": e.hash} for e in await s.scalars(q)]


@dataclass(frozen=True)
class Problem:
    seq: int
    reason: str


async def verify(db: Database, *, batch: int = 5000) -> tuple[int, list[Problem]]:
    """Walk the chain; returns (entries checked, problems). Empty problems: intact."""
    problems: list[Problem] = []
    prev, expected, checked = GENESIS, 1, 0
    async with db.session(Scope.system(), read_only=True) as s:
        after = 0
        while True:
            try:
                rows = list(
                    await s.scalars(
                        select(AuditEntry)
                        .where(AuditEntry.seq > after)
                        .order_by(AuditEntry.seq)
                        .limit(batch)
                    )
                )
            except (ValueError, TypeError) as exc:  # a value no longer of its column's type
                where = f"after entry {after}" if after else "at the start"
                problems.append(Problem(after + 1, f"an entry {where} cannot be read ({exc})"))
                break
            if not rows:
                break
            for e in rows:
                checked += 1
                if e.seq != expected:
                    problems.append(
                        Problem(expected, f"entry {expected} is missing (next is {e.seq})")
                    )
                if e.prev_hash != prev:
                    problems.append(
                        Problem(
                            e.seq, "does not link to the entry before it (removed or reordered)"
                        )
                    )
                try:
                    intact = entry_hash(e.prev_hash, body_of(e)) == e.hash
                except (ValueError, TypeError, AttributeError):
                    intact = False
                if not intact:
                    problems.append(Problem(e.seq, "its content does not match its hash (changed)"))
                prev, expected = e.hash, e.seq + 1
            after = rows[-1].seq
    return checked, problems
