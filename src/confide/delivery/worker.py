"""The outbox worker: claims due jobs, delivers them, records every attempt.

At-least-once: a job is marked done only after the destination accepted it. A worker that dies
mid-delivery leaves its job ``running`` with a lease; when the lease expires another worker (or
the restarted one) takes it again, and the receiver de-duplicates by the idempotency key.
Claiming is one short write transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the database
write lock on SQLite), so several ``confide worker`` processes never deliver the same job at once.
The network call happens outside any transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

import httpx
import orjson
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from confide.accounts.models import Organisation
from confide.audit import log as audit
from confide.clock import utcnow
from confide.delivery.adf import render_adf
from confide.delivery.email import compose_lead_email, send_configured
from confide.delivery.models import DeliveryAttempt, Destination, OutboxJob
from confide.delivery.snapshot import LeadSnapshot, for_region
from confide.delivery.webhook import WebhookError, lead_payload, post_webhook
from confide.leads.models import Lead, Person
from confide.leads.snapshots import lead_snapshot
from confide.settings import Settings
from confide.storage.engine import Database
from confide.storage.scope import Scope

log = logging.getLogger("confide.delivery")

#: Erasure notices: a privacy request waits for them (R51) and is told how each one ended.
NOTICE_EVENTS = frozenset({"lead.erased", "transfer.erased"})

#: ``FOR NO KEY UPDATE`` on PostgreSQL (ignored by SQLite, whose writers are serialised): the lock
#: an UPDATE of non-key columns takes anyway, which does not block inserts referencing the row.
_ROW_LOCK = {"key_share": True}


class Undeliverable(Exception):
    """The job can never succeed as it stands (no consent, lead gone): it is canceled."""


@dataclass(frozen=True)
class ErasureNotice:
    """Tell a destination that received a lead to erase it (GDPR Art. 17 and 19)."""

    lead_id: str
    organisation: str
    #: Sent to an organisation the client forwarded the lead to at the person's request.
    onward: bool = False

    def text(self) -> str:
        how = (
            f"{self.organisation} forwarded you lead {self.lead_id} at the person's request. "
            if self.onward
            else f"Lead {self.lead_id} ({self.organisation}). "
        )
        return (
            f"{how}The person behind it asked for their personal data to be erased: it must now "
            "be erased. Please delete this lead and every copy of it from your systems (CRM, "
            "inboxes, exports). No reply is needed. (GDPR Articles 17 and 19.)"
        )


@dataclass(frozen=True)
class Claimed:
    id: int
    attempts: int


class DeliveryWorker:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
        on_lead_changed: Callable[[str], Awaitable[None]] | None = None,
        on_notice_settled: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.rng = rng or random.Random()
        #: Told after a lead's delivery state changed, so consoles re-read it (via the broker).
        self.on_lead_changed = on_lead_changed  # jitter, not security
        #: Told (with the job's idempotency key) after an erasure notice was delivered, dead-
        #: lettered or canceled, so the privacy request waiting for it moves on.
        self.on_notice_settled = on_notice_settled
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="delivery-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def notify(self) -> None:
        """New jobs were committed in this process: look now rather than at the next poll."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                busy = await self.run_once()
            except Exception:
                log.exception("delivery worker pass failed; retrying")
                busy = 0
            if busy:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.worker_poll_s)

    # --- one pass ---------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Claim and deliver the due jobs (up to the concurrency); returns how many ran."""
        claimed = await self._claim(self.settings.delivery_concurrency)
        if claimed:
            await asyncio.gather(*(self._run(job) for job in claimed))
        return len(claimed)

    async def drain(self, limit: int = 1000) -> int:
        """Run passes until nothing is due (tests and `confide worker --once`)."""
        total = 0
        while total < limit:
            ran = await self.run_once()
            if not ran:
                break
            total += ran
        return total

    async def _claim(self, limit: int) -> list[Claimed]:
        now = self.clock()
        due = or_(
            and_(OutboxJob.state == "pending", OutboxJob.next_attempt_at <= now),
            and_(OutboxJob.state == "running", OutboxJob.lease_until < now),
        )
        ids = (
            select(OutboxJob.id)
            .where(due)
            .order_by(OutboxJob.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self.db.session(Scope.system()) as s:
            picked = list(await s.scalars(ids))
            if not picked:
                return []
            rows = await s.execute(
                update(OutboxJob)
                .where(OutboxJob.id.in_(picked), due)
                .values(
                    state="running",
                    attempts=OutboxJob.attempts + 1,
                    lease_until=now + timedelta(seconds=self.settings.delivery_lease_s),
                    updated_at=now,
                )
                .returning(OutboxJob.id, OutboxJob.attempts)
                .execution_options(synchronize_session=False)
            )
            return [Claimed(int(r[0]), int(r[1])) for r in rows]

    async def _run(self, job: Claimed) -> None:
        started = time.perf_counter()
        if job.attempts > self.settings.delivery_max_attempts:
            # Only a worker that died during every attempt gets here: stop taking it again.
            await self._finish(job, "dead", "gave up: no attempt finished (worker stopped)")
            return
        try:
            kind, target, secret, key, snapshot = await self._prepare(job.id)
            await self._send(kind, target, secret, key, snapshot)
        except Undeliverable as exc:
            await self._finish(job, "canceled", str(exc))
        except WebhookError as exc:
            await self._failed(job, str(exc), retryable=exc.retryable)
        except (OSError, TimeoutError, httpx.HTTPError) as exc:
            await self._failed(job, f"{type(exc).__name__}: {exc}"[:300], retryable=True)
        except Exception as exc:  # an SMTP refusal, a bug: retried, then dead-lettered
            log.warning("delivery job %s failed: %s", job.id, type(exc).__name__)
            await self._failed(job, f"{type(exc).__name__}: {exc}"[:300], retryable=True)
        else:
            ms = int((time.perf_counter() - started) * 1000)
            await self._finish(job, "done", f"delivered in {ms} ms")

    async def _prepare(
        self, job_id: int
    ) -> tuple[str, str, str | None, str, LeadSnapshot | ErasureNotice]:
        async with self.db.session(Scope.system(), read_only=True) as s:
            job = await s.get(OutboxJob, job_id)
            if job is not None and job.event == "transfer.erased":
                if not job.recipient:
                    raise Undeliverable("no address for the onward recipient")
                org = await s.get(Organisation, job.organisation_id)
                name = org.name if org else ""
                notice = ErasureNotice(job.subject_ref or "?", name, onward=True)
                return "email", job.recipient, None, job.idempotency_key, notice
            dest = (
                await s.get(Destination, job.destination_id) if job and job.destination_id else None
            )
            if job is None or dest is None or not dest.enabled:
                raise Undeliverable("the destination was removed or disabled")
            if job.event == "lead.erased":
                org = await s.get(Organisation, job.organisation_id)
                notice = ErasureNotice(job.subject_ref or "?", org.name if org else "")
                return dest.kind, dest.target, dest.secret, job.idempotency_key, notice
            lead = await s.get(Lead, job.lead_id) if job.lead_id else None
            if lead is None or lead.consent_id is None or lead.delivery_state == "withdrawn":
                raise Undeliverable("no granted, unwithdrawn consent for this lead")
            person = await s.get(Person, lead.person_id)
            if person is not None and person.restricted:
                raise Undeliverable("the person restricted the processing of their data")
            status = "resend" if job.event == "lead.corrected" else "new"
            snapshot = await lead_snapshot(s, lead.id, status=status)
            return (
                dest.kind,
                dest.target,
                dest.secret,
                job.idempotency_key,
                for_region(snapshot, dest.region),
            )

    async def _send(
        self,
        kind: str,
        target: str,
        secret: str | None,
        key: str,
        snapshot: LeadSnapshot | ErasureNotice,
    ) -> None:
        cfg = self.settings
        if isinstance(snapshot, ErasureNotice):
            await self._send_notice(kind, target, secret, key, snapshot)
            return
        if kind == "email":
            adf = render_adf(snapshot, provider_url=cfg.public_url or None)
            message = compose_lead_email(snapshot, sender=cfg.mail_from, recipient=target, adf=adf)
            await self._smtp(message)
            return
        if kind == "webhook":
            if self._http is None:
                self._http = httpx.AsyncClient(follow_redirects=False, timeout=10.0)
            body = lead_payload(snapshot, idempotency_key=key)
            await post_webhook(
                target, secret or "", body, key, client=self._http, now=int(time.time())
            )
            return
        raise Undeliverable(f"unknown destination kind {kind!r}")

    async def _send_notice(
        self, kind: str, target: str, secret: str | None, key: str, notice: ErasureNotice
    ) -> None:
        cfg = self.settings
        if kind == "email":
            message = EmailMessage()
            message["From"] = cfg.mail_from
            message["To"] = target
            message["Subject"] = f"Erasure notice: lead {notice.lead_id}"
            message["X-Confide-Lead"] = notice.lead_id
            message["Auto-Submitted"] = "auto-generated"
            message.set_content(notice.text())
            await self._smtp(message)
            return
        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=False, timeout=10.0)
        body = orjson.dumps(
            {"event": "lead.erased", "id": key, "lead_id": notice.lead_id, "text": notice.text()}
        )
        await post_webhook(target, secret or "", body, key, client=self._http, now=int(time.time()))

    async def _smtp(self, message: EmailMessage) -> None:
        await send_configured(self.settings, message)

    def backoff(self, attempts: int) -> float:
        """Exponential backoff with 'equal jitter': half fixed, half random."""
        cap = self.settings.delivery_backoff_max_s
        delay = min(cap, self.settings.delivery_backoff_s * 2 ** max(attempts - 1, 0))
        return float(delay / 2 + self.rng.uniform(0, delay / 2))

    async def _failed(self, job: Claimed, detail: str, *, retryable: bool) -> None:
        if retryable and job.attempts < self.settings.delivery_max_attempts:
            await self._finish(job, "pending", detail, delay=self.backoff(job.attempts))
        else:
            await self._finish(job, "dead", detail)

    async def _finish(self, job: Claimed, state: str, detail: str, delay: float = 0.0) -> None:
        now = self.clock()
        outcome = {"done": "delivered", "pending": "retry"}.get(state, state)
        async with self.db.session(Scope.system()) as s:
            # Locked so a withdrawal (or a retry from the console) cannot change the job between
            # this check and our write; the lead is locked after it, in the same order as theirs.
            row = await s.get(OutboxJob, job.id, with_for_update=_ROW_LOCK)
            if row is None or row.state != "running" or row.attempts != job.attempts:
                return  # canceled (withdrawal, erasure) or taken over after a lease expiry
            lead_id = row.lead_id
            notice_key = row.idempotency_key if row.event in NOTICE_EVENTS else None
            row.state = state
            row.lease_until = None
            row.updated_at = now
            row.last_error = None if state == "done" else detail[:300]
            row.next_attempt_at = now + timedelta(seconds=delay)
            if state == "done":
                row.done_at = now
            if state in ("done", "canceled"):
                row.recipient = None  # an onward recipient's address: kept only until sent
            s.add(
                DeliveryAttempt(
                    organisation_id=row.organisation_id,
                    job_id=row.id,
                    attempt=job.attempts,
                    outcome=outcome,
                    detail=detail[:300],
                    at=now,
                )
            )
            if row.lead_id is not None:
                await _update_lead_state(s, row.lead_id, now)
            if state in ("done", "dead"):
                await audit.append(
                    s,
                    audit.SYSTEM,
                    f"{row.event}.{'sent' if state == 'done' else 'failed'}",
                    organisation_id=row.organisation_id,
                    subject_kind="lead",
                    subject_ref=row.lead_id or row.subject_ref,
                    purpose=(
                        f"delivery to destination {row.destination_id}: {outcome}"
                        if row.destination_id
                        else f"erasure notice to an onward recipient: {outcome}"
                    ),
                )
        log.info("delivery job %s attempt %s: %s", job.id, job.attempts, outcome)
        if lead_id is not None and state in ("done", "dead") and self.on_lead_changed is not None:
            try:
                await self.on_lead_changed(lead_id)
            except Exception:  # a missed refresh must never undo a delivery
                log.warning("could not announce the delivery of lead %s", lead_id)
        settled = state in ("done", "dead", "canceled")
        if notice_key is not None and settled and self.on_notice_settled is not None:
            try:
                await self.on_notice_settled(notice_key)
            except Exception:  # the privacy task's daily pass settles it instead
                log.warning("could not settle the privacy request of job %s", job.id)


async def _update_lead_state(s: AsyncSession, lead_id: str, now: datetime) -> None:
    """delivered once every job is done; failed while any is dead; else queued.

    The lead row is locked before its jobs are counted. Without the lock, the two jobs of one
    lead (two destinations) finishing at once, in one worker or two, each see the other still
    ``running`` (READ COMMITTED on PostgreSQL), and the lead stays ``queued`` for ever. With it,
    the second waits for the first to commit, and its count (a new statement) sees both done.
    """
    await s.flush()
    lead = await s.get(Lead, lead_id, with_for_update=_ROW_LOCK)
    counts = dict(
        (
            await s.execute(
                select(OutboxJob.state, func.count())
                .where(OutboxJob.lead_id == lead_id)
                .group_by(OutboxJob.state)
            )
        ).all()
    )
    if lead is None or lead.delivery_state == "withdrawn":
        return
    if counts.get("dead"):
        lead.delivery_state = "failed"
    elif counts.get("pending") or counts.get("running"):
        lead.delivery_state = "queued"
    else:
        lead.delivery_state = "delivered"
        lead.delivered_at = lead.delivered_at or now
    lead.updated_at = now
