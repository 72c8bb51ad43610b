"""The retention purge (policy 5): minimum, maximum, contract end, behaviour, legal holds.

Rules, per client organisation, on the clock ``now``:

- **Contract end** (R07): from the end date, a ``return_then_delete`` client first gets an export
  bundle of all its data; three months after the end date every person, conversation and visit of
  the organisation is erased and its organisation key destroyed (crypto-shredding the backups).
- **Shorter personal-data retention** chosen by the client (at least 3 months): chat visitors and
  persons whose last activity is older are erased.
- **Minimum**: nothing younger than 3 months is removed by the purge (an erasure request may).
- **Behaviour** (R43): raw visits and page views older than the organisation's
  ``behaviour_retention_days`` are deleted; the daily aggregates stay.
- **Legal holds** (R41) on the organisation, a person or a lead suspend the purge for what they
  cover; the report says what was held and why.

Work happens in batches, each its own short transaction, so the chat's writes interleave and an
interrupted run leaves consistent data: the next run continues where it stopped.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, or_, select, true

from confide.accounts.models import Organisation
from confide.audit import log as audit
from confide.chat.models import Conversation, Visitor
from confide.clock import utcnow
from confide.leads.models import Lead, Person
from confide.privacy import fulfil
from confide.privacy.deadlines import add_months
from confide.privacy.models import LegalHold
from confide.privacy.registry import stores
from confide.retention import records
from confide.retention.models import RetentionRun
from confide.storage.engine import Database
from confide.storage.scope import Scope
from confide.tracking.models import PageView, Visit

MINIMUM_MONTHS = 3
#: Visits per behaviour transaction (with their page views): about 5 ms of SQLite's single write
#: lock, which is what a chat message may wait while a purge runs (bench/purge_during_chat.py:
#: 200 per transaction held it ~20 ms, p99 19 ms during a million-row purge; 2,000 ~100 ms).
BEHAVIOUR_BATCH = 50
AFTER_CONTRACT_MONTHS = 3
Progress = Callable[[str, int], None]


@dataclass
class Finding:
    organisation_id: str
    rule: str
    store: str
    rows: int
    reason: str
    held: bool = False


async def _audit_erasures(s: Any, run_id: int, findings: list[Finding]) -> None:
    """One entry per organisation whose data the run erased: which stores, how many rows, why
    (counts and rules only). The run's own row keeps the full report; this puts the erasure in
    the client's audit trail beside every other access to their data (R39)."""
    by_org: dict[str, list[Finding]] = {}
    for f in findings:
        if f.rows and not f.held and f.organisation_id != "*":
            by_org.setdefault(f.organisation_id, []).append(f)
    for org_id, done in by_org.items():
        summary = ", ".join(f"{f.store} {f.rows} ({f.rule})" for f in done)
        await audit.append(
            s,
            audit.SYSTEM,
            "retention.erased",
            organisation_id=org_id,
            subject_kind="retention_run",
            subject_ref=str(run_id),
            fields=sorted({f.store for f in done}),
            purpose=f"retention purge: {summary}"[:500],
        )


class Purger:
    def __init__(self, db: Database, *, batch: int = 500, exports_dir: Path | None = None) -> None:
        self.db = db
        self.batch = batch
        self.exports_dir = exports_dir or Path("exports")

    async def run(self, *, dry_run: bool = False, progress: Progress | None = None) -> RetentionRun:
        now = utcnow()
        tell = progress or (lambda _stage, _n: None)
        async with self.db.session(Scope.system()) as s:
            run = RetentionRun(
                started_at=now, as_of=now, dry_run=dry_run, state="running", report=[]
            )
            s.add(run)
            await s.flush()
            run_id = run.id
            orgs = list(await s.scalars(select(Organisation).order_by(Organisation.created_at)))
            for org in orgs:
                s.expunge(org)
        findings: list[Finding] = []
        try:
            for org in orgs:
                findings += await self._organisation(org, now, dry_run, tell)
            gone = await records.expired_request_records(self.db, now, dry_run=dry_run)
            if gone:
                reason = f"ended more than {records.REQUEST_RECORD_MONTHS} months ago"
                findings.append(Finding("*", "request_records", "privacy_requests", gone, reason))
        except BaseException:
            await self._close(run_id, "interrupted", findings)
            raise
        return await self._close(run_id, "complete", findings)

    async def _close(self, run_id: int, state: str, findings: list[Finding]) -> RetentionRun:
        async with self.db.session(Scope.system()) as s:
            run = await s.get(RetentionRun, run_id)
            assert run is not None
            run.state, run.finished_at = state, utcnow()
            run.report = [asdict(f) for f in findings]
            if not run.dry_run:
                await _audit_erasures(s, run_id, findings)
            await s.flush()
            s.expunge(run)
            return run

    async def _organisation(
        self, org: Organisation, now: datetime, dry_run: bool, tell: Progress
    ) -> list[Finding]:
        held = await self._org_hold(org.id)
        if held:
            return [Finding(org.id, "all", "*", 0, held, held=True)]
        out: list[Finding] = []
        if org.contract_end is not None and now.date() >= org.contract_end:
            out += await self._contract_end(org, now, dry_run, tell)
            if org.purged_at is not None or now.date() >= _deadline(org.contract_end):
                return out
        if org.retention_months:
            months = max(MINIMUM_MONTHS, org.retention_months)
            cutoff = add_months(now, -months)
            out += await self._personal(org, cutoff, f"older than {months} months", dry_run, tell)
        out += await self._behaviour(org, now, dry_run, tell)
        return out

    # --- rules --------------------------------------------------------------------------

    async def _contract_end(
        self, org: Organisation, now: datetime, dry_run: bool, tell: Progress
    ) -> list[Finding]:
        out: list[Finding] = []
        assert org.contract_end is not None
        if org.end_of_contract == "return_then_delete" and org.returned_at is None and not dry_run:
            path = await self._return_bundle(org, now)
            out.append(
                Finding(org.id, "contract_end", "return_bundle", 1, f"export bundle {path.name}")
            )
        if now.date() < _deadline(org.contract_end) or org.purged_at is not None:
            return out
        reason = f"contract ended {org.contract_end.isoformat()} + {AFTER_CONTRACT_MONTHS} months"
        out += await self._personal(
            org, now + timedelta(days=1), reason, dry_run, tell, rule="contract_end"
        )
        out += await self._behaviour(org, now, dry_run, tell, everything=True)
        bundles = records.return_bundles(self.exports_dir, org.id)
        if bundles:
            out.append(Finding(org.id, "contract_end", "return_bundle", len(bundles), reason))
        if not dry_run:
            for bundle in bundles:
                bundle.unlink(missing_ok=True)  # the returned copy goes with the data (R07)
            destroyed = self.db.vault.destroy_organisation(org.id)
            async with self.db.session(Scope.system()) as s:
                stored = await s.get(Organisation, org.id)
                assert stored is not None
                stored.purged_at = now
                await audit.append(
                    s,
                    audit.SYSTEM,
                    "key.destroyed",
                    organisation_id=org.id,
                    subject_kind="organisation_key",
                    subject_ref=org.id,
                    purpose=f"{reason}: {destroyed} key(s) destroyed, "
                    f"{len(bundles)} return bundle(s) deleted",
                )
            out.append(Finding(org.id, "contract_end", "keys", destroyed, reason))
        return out

    async def _personal(
        self,
        org: Organisation,
        cutoff: datetime,
        reason: str,
        dry_run: bool,
        tell: Progress,
        *,
        rule: str = "retention",
    ) -> list[Finding]:
        """Erase chat visitors (and their persons) whose last activity is before ``cutoff``."""
        floor = add_months(utcnow(), -MINIMUM_MONTHS) if rule == "retention" else cutoff
        cutoff = min(cutoff, floor)
        totals: dict[str, int] = {}
        held_rows = 0
        done: set[str] = set()
        while True:
            started = time.perf_counter()
            async with self.db.session(Scope.system()) as s:
                visitors = await self._stale_visitors(s, org.id, cutoff, done)
                if not visitors:
                    break
                done.update(visitors)
                persons = list(
                    await s.scalars(select(Person.id).where(Person.visitor_id.in_(visitors)))
                )
                held = await self._held(s, org.id, persons)
                keep = {v for v, p in await self._owners(s, persons) if p in held}
                held_rows += len(keep)
                visitors = [v for v in visitors if v not in keep]
                persons = [p for p in persons if p not in held]
                subject = await fulfil.resolve(s, org.id, persons, visitors)
                for store in stores():
                    n = 0 if dry_run else await store.erase(s, subject)
                    if dry_run:
                        n = len(subject.conversation_ids) if store.name == "conversations" else 0
                    totals[store.name] = totals.get(store.name, 0) + n
                if not dry_run:
                    for v in visitors:
                        self.db.vault.destroy_subject(v)
                    await s.execute(delete(Visitor).where(Visitor.id.in_(visitors)))
                totals["subjects"] = totals.get("subjects", 0) + len(visitors)
            tell(f"{rule}: subjects", totals["subjects"])
            await _yield_writer(started)
        out = [Finding(org.id, rule, k, v, reason) for k, v in totals.items() if v]
        if held_rows:
            out.append(Finding(org.id, rule, "subjects", held_rows, "legal hold", held=True))
        return out

    async def _stale_visitors(
        self, s: Any, org_id: str, cutoff: datetime, done: set[str]
    ) -> list[str]:
        last = (
            select(func.max(Conversation.updated_at))
            .where(Conversation.visitor_id == Visitor.id)
            .scalar_subquery()
        )
        rows = await s.scalars(
            select(Visitor.id)
            .where(
                Visitor.organisation_id == org_id,
                Visitor.last_seen_at < cutoff,
                or_(last.is_(None), last < cutoff),
                Visitor.id.not_in(done) if done else true(),
            )
            .limit(self.batch)
        )
        return list(rows)

    async def _owners(self, s: Any, persons: list[str]) -> list[tuple[str, str]]:
        rows = await s.execute(select(Person.visitor_id, Person.id).where(Person.id.in_(persons)))
        return [(r[0], r[1]) for r in rows.all() if r[0]]

    async def _held(self, s: Any, org_id: str, persons: list[str]) -> set[str]:
        """Persons under a hold, directly or through one of their leads."""
        leads = (
            await s.execute(select(Lead.id, Lead.person_id).where(Lead.person_id.in_(persons)))
        ).all()
        targets = set(persons) | {r[0] for r in leads}
        holds = set(
            await s.scalars(
                select(LegalHold.target_id).where(
                    LegalHold.organisation_id == org_id,
                    LegalHold.released_at.is_(None),
                    LegalHold.target_id.in_(targets),
                )
            )
        )
        return {p for p in persons if p in holds} | {r[1] for r in leads if r[0] in holds}

    async def _behaviour(
        self,
        org: Organisation,
        now: datetime,
        dry_run: bool,
        tell: Progress,
        *,
        everything: bool = False,
    ) -> list[Finding]:
        cutoff = (
            now + timedelta(days=1)
            if everything
            else now - timedelta(days=org.behaviour_retention_days)
        )
        removed = 0
        while True:
            started = time.perf_counter()
            async with self.db.session(Scope.system()) as s:
                ids = list(
                    await s.scalars(
                        select(Visit.id)
                        .where(
                            Visit.organisation_id == org.id,
                            Visit.started_at < cutoff,
                            Visit.person_id.is_(None) if not everything else true(),
                        )
                        .limit(BEHAVIOUR_BATCH)
                    )
                )
                if not ids:
                    break
                if dry_run:
                    removed += len(ids)
                    break
                await s.execute(delete(PageView).where(PageView.visit_id.in_(ids)))
                await s.execute(delete(Visit).where(Visit.id.in_(ids)))
                removed += len(ids)
            tell("behaviour: visits", removed)
            await _yield_writer(started)
        if not removed:
            return []
        why = (
            "contract ended"
            if everything
            else f"raw events older than {org.behaviour_retention_days} days"
        )
        return [Finding(org.id, "behaviour", "visits", removed, why)]

    async def _org_hold(self, org_id: str) -> str | None:
        async with self.db.session(Scope.system(), read_only=True) as s:
            hold = await s.scalar(
                select(LegalHold).where(
                    LegalHold.organisation_id == org_id,
                    LegalHold.target_kind == "organisation",
                    LegalHold.released_at.is_(None),
                )
            )
        return f"legal hold ({hold.owner}): {hold.reason}" if hold else None

    async def _return_bundle(self, org: Organisation, now: datetime) -> Path:
        """Everything the client owns, as one JSON file (the "return" of R07)."""
        self.exports_dir.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {
            "organisation": org.name,
            "generated_at": now.isoformat(),
            "subjects": [],
        }
        async with self.db.session(Scope.system(), read_only=True) as s:
            visitors = list(
                await s.scalars(select(Visitor.id).where(Visitor.organisation_id == org.id))
            )
            for start in range(0, len(visitors), self.batch):
                chunk = visitors[start : start + self.batch]
                persons = list(
                    await s.scalars(select(Person.id).where(Person.visitor_id.in_(chunk)))
                )
                subject = await fulfil.resolve(s, org.id, persons, chunk)
                data["subjects"].append(await fulfil.export(s, subject))
        digest = hashlib.sha256(org.id.encode()).hexdigest()[:12]  # see records.return_bundles
        path = self.exports_dir / f"return-{digest}-{now.date().isoformat()}.json"
        path.write_text(json.dumps(data, default=str))
        path.chmod(0o600)
        async with self.db.session(Scope.system()) as s:
            stored = await s.get(Organisation, org.id)
            assert stored is not None
            stored.returned_at = now
            await audit.append(
                s,
                audit.SYSTEM,
                "organisation.returned",
                organisation_id=org.id,
                subject_kind="organisation",
                subject_ref=org.id,
                purpose=f"contract end: export bundle {path.name}",
            )
        return path


async def _yield_writer(started: float) -> None:
    """Pause as long as the last transaction held the write lock: on SQLite (one writer) the
    chat's commits get at least half of the lock's time while a purge runs."""
    await asyncio.sleep(min(0.25, max(0.001, time.perf_counter() - started)))


def _deadline(contract_end: date) -> date:
    """Contract end + 3 months: the latest day personal data may still exist (policy 5.3)."""
    end = datetime(contract_end.year, contract_end.month, contract_end.day)
    return add_months(end, AFTER_CONTRACT_MONTHS).date()
