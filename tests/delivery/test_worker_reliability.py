"""Lead delivery loses nothing: the outbox worker against real HTTP receivers, on both backends.

The promises (the product's delivery issue), one test each:

1. A flaky receiver gets every consented lead at least once, and exactly once after de-duplication
   by ``Idempotency-Key``; every request is signed; unconsented and withdrawn leads never leave.
2. A ``confide worker`` killed mid-delivery loses nothing: its ``running`` job is taken again when
   the lease expires.
3. A delivery that keeps failing is dead-lettered after ``delivery_max_attempts`` (at once when
   the receiver refuses it for good) and goes out when retried from the console.
4. Two workers draining one outbox never take the same job twice.
5. Residency: a destination outside the UK/EU gets the lead without personal data.
6. A lead released again (consent withdrawn then given again; a failed lead sent again) reuses
   its job and key, and is delivered once.

Seeding goes through the services in-process (much faster than HTTP); workers are real
:class:`DeliveryWorker` instances or ``confide worker`` processes. Tests wait on conditions with
generous deadlines and never assert durations.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from confide.accounts.models import Role
from confide.accounts.principal import Principal
from confide.chat.service import VisitorActor
from confide.delivery.models import DeliveryAttempt, OutboxJob
from confide.delivery.webhook import verify
from confide.delivery.worker import DeliveryWorker
from confide.errors import ConsentRequired, InvalidState
from confide.leads.models import Lead
from confide.settings import Settings
from confide.sites.models import Site
from confide.storage.engine import Database
from confide.storage.scope import Scope
from confide.web.context import AppContext
from tests.delivery.receiver import Receiver, Reply, always

#: Waits are for conditions, not durations: long enough for a loaded CI machine to get there.
DEADLINE_S = 60.0
#: Retries within milliseconds so a test with dozens of failures runs in seconds.
FAST = {
    "delivery_backoff_s": 0.01,
    "delivery_backoff_max_s": 0.05,
    "worker_poll_s": 0.05,
    "rollup_interval_s": 0.0,
}
TERMINAL = frozenset({"done", "dead", "canceled"})
#: Consent journeys that release the lead (granted before or after the lead was created).
RELEASED = frozenset({"before", "after"})


# --- seeding through the services ---------------------------------------------------------------


def settings(database_url: str, **overrides: Any) -> Settings:
    return Settings(database_url=database_url, worker=False, **{**FAST, **overrides})


@dataclass(frozen=True)
class Shop:
    org_id: str
    site: Site
    operator: Principal


@dataclass(frozen=True)
class Chat:
    visitor: VisitorActor
    conversation_id: str
    lead_id: str
    consent: str
    email: str
    phone: str
    name: str


async def open_shop(ctx: AppContext, name: str) -> Shop:
    org = await ctx.accounts.create_organisation(name)
    site = await ctx.sites.create_site(
        organisation_id=org.id, name=f"{name} Leeds", origins=["https://dealer.example"]
    )
    user = await ctx.accounts.create_user(
        email=f"operator-{secrets.token_hex(4)}@example.com",
        name="Olive Operator",
        role=Role.OPERATOR,
        password="pw-" + secrets.token_hex(8),
        site_ids=[site.id],
    )
    return Shop(org.id, site, await ctx.accounts.principal_for(user))


async def add_webhook(ctx: AppContext, shop: Shop, url: str, region: str = "UK") -> str:
    """Returns the signing secret (shown once)."""
    created = await ctx.delivery_admin.add_destination(
        Scope.system(), organisation_id=shop.org_id, kind="webhook", target=url, region=region
    )
    assert created.secret
    return created.secret


async def lead_chat(ctx: AppContext, shop: Shop, n: int, consent: str) -> Chat:
    """A visitor chat that became a lead. ``consent``: before / after (the lead is released),
    withdrawn (granted, then withdrawn before any worker ran), denied, unanswered, none."""
    op = shop.operator
    visitor, view, _token = await ctx.chat.open_conversation(shop.site, None, None)
    conv = view.id
    name, email, phone = f"Sam Example {n}", f"sam.{n}@example.org", f"+4474009{n:05d}"
    ref = await ctx.chat.authorise(visitor, conv)
    await ctx.chat.post(visitor, ref, f"hello-{n}", f"Hi, I'm {name}, mail me at {email}")
    await ctx.leads.update_details(op, conv, {"name": name, "email": email, "phone": phone})

    async def ask(answer: str | None) -> None:
        asked = await ctx.leads.request_consent(op, conv)
        assert asked.request_id is not None
        if answer is not None:
            await ctx.leads.answer_consent(visitor, conv, asked.request_id, answer)
        if consent == "withdrawn":
            await ctx.leads.answer_consent(visitor, conv, asked.request_id, "withdrawn")

    if consent == "before":
        await ask("granted")
    lead = await ctx.leads.create_lead(
        op,
        conv,
        purpose="test_drive",
        vehicle={"make": "Skoda", "model": "Octavia", "year": "2021", "stock": f"UK{n}"},
        comments=f"Can {name} come on Saturday?",
    )
    if consent in ("after", "withdrawn", "denied"):
        await ask("denied" if consent == "denied" else "granted")
    elif consent == "unanswered":
        await ask(None)
    return Chat(visitor, conv, lead.id, consent, email, phone, name)


# --- reading the outcome -------------------------------------------------------------------------


async def jobs_of(db: Database, org_id: str) -> list[OutboxJob]:
    async with db.session(Scope.system(), read_only=True) as s:
        q = select(OutboxJob).where(OutboxJob.organisation_id == org_id).order_by(OutboxJob.id)
        return list(await s.scalars(q))


async def attempts_of(db: Database, org_id: str) -> dict[int, list[tuple[int, str]]]:
    """job id → [(attempt, outcome)] in the order they were logged."""
    async with db.session(Scope.system(), read_only=True) as s:
        rows = await s.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.organisation_id == org_id)
            .order_by(DeliveryAttempt.id)
        )
        out: dict[int, list[tuple[int, str]]] = {}
        for a in rows:
            out.setdefault(a.job_id, []).append((a.attempt, a.outcome))
        return out


async def lead_states(db: Database, org_id: str) -> dict[str, str]:
    async with db.session(Scope.system(), read_only=True) as s:
        rows = await s.execute(
            select(Lead.id, Lead.delivery_state).where(Lead.organisation_id == org_id)
        )
        return {str(lead_id): str(state) for lead_id, state in rows.all()}


async def quiet(db: Database, *org_ids: str) -> bool:
    """No job of these organisations can still run."""
    for org_id in org_ids:
        if any(j.state not in TERMINAL for j in await jobs_of(db, org_id)):
            return False
    return True


async def wait_for(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def lead_of(body: bytes) -> str:
    return str(orjson.loads(body)["lead"]["lead_id"])


# --- 1. flaky receiver -----------------------------------------------------------------------


def flaky(seed: int) -> Callable[[str, str], Reply]:
    """~40 % 500s, 10 % connections dropped unread, 10 % stored but the answer lost."""
    rng = random.Random(seed)

    def reply(_path: str, _key: str) -> Reply:
        roll = rng.random()
        if roll < 0.4:
            return Reply(500)
        if roll < 0.5:
            return Reply(503, drop=True)
        if roll < 0.6:
            return Reply(200, drop=True)
        return Reply(200)

    return reply


def test_flaky_receiver_gets_each_consented_lead_once_after_dedup(database_url: str) -> None:
    with Receiver(flaky(seed=10)) as receiver:
        asyncio.run(_flaky(database_url, receiver))


async def _flaky(url: str, receiver: Receiver) -> None:
    ctx = AppContext.build(settings(url, delivery_max_attempts=50))
    await ctx.start()
    try:
        shop = await open_shop(ctx, "Flaky Motors")
        secret = await add_webhook(ctx, shop, receiver.url("/flaky"))
        plan = [*["before", "after"] * 10, "withdrawn", "withdrawn"]
        plan += ["none"] * 4 + ["unanswered"] * 3 + ["denied"] * 3
        random.Random(3).shuffle(plan)
        chats = [await lead_chat(ctx, shop, n, c) for n, c in enumerate(plan)]
        released = {c.lead_id for c in chats if c.consent in RELEASED}
        withdrawn = {c.lead_id for c in chats if c.consent == "withdrawn"}
        held = {c.lead_id for c in chats} - released - withdrawn
        with pytest.raises(ConsentRequired):
            await ctx.leads.deliver(shop.operator, sorted(held)[0])

        workers = [DeliveryWorker(ctx.db, ctx.settings, rng=random.Random(i)) for i in (1, 2)]
        for w in workers:
            w.start()
        try:
            await wait_for(lambda: quiet(ctx.db, shop.org_id), "the outbox to drain")
        finally:
            for w in workers:
                await w.stop()

        jobs = await jobs_of(ctx.db, shop.org_id)
        attempts = await attempts_of(ctx.db, shop.org_id)
        states = await lead_states(ctx.db, shop.org_id)
    finally:
        await ctx.stop()

    # The outbox: one job per released lead, all done; withdrawn ones canceled; held: none.
    assert {j.lead_id for j in jobs if j.state == "done"} == released
    assert {j.lead_id for j in jobs if j.state != "done"} == withdrawn
    assert all(j.state == "canceled" for j in jobs if j.lead_id in withdrawn)
    keys = {j.idempotency_key for j in jobs if j.state == "done"}

    requests = receiver.requests
    assert requests, "the receiver saw nothing"
    assert all(verify(secret, r.signature, r.body, now=r.at) for r in requests)
    assert {lead_of(r.body) for r in requests}.isdisjoint(held | withdrawn)
    # The failures really happened, including stored-but-unanswered ones (sent again).
    assert any(r.status >= 500 for r in requests)
    assert any(r.dropped and not r.stored for r in requests)
    assert any(r.dropped and r.stored for r in requests)

    # At least once, and exactly once after de-duplication: one document per key, per lead.
    stored = receiver.stored_keys()
    assert set(stored) == keys
    assert max(stored.values()) >= 2
    documents: dict[str, bytes] = {}
    for r in receiver.stored():
        assert documents.setdefault(r.key, r.body) == r.body, "a retry changed the document"
        assert orjson.loads(r.body)["id"] == r.key
    assert sorted(lead_of(b) for b in documents.values()) == sorted(released)

    # Every HTTP request is one logged attempt: retries, then the delivery.
    assert sum(len(a) for a in attempts.values()) == len(requests)
    for job in jobs:
        if job.state == "done":
            expected = [(n, "retry") for n in range(1, job.attempts)]
            assert attempts[job.id] == [*expected, (job.attempts, "delivered")]
        else:
            assert job.id not in attempts
    for lead_id, state in states.items():
        want = "delivered" if lead_id in released else "awaiting_consent"
        assert state == ("withdrawn" if lead_id in withdrawn else want)


# --- 2. crash and restart -------------------------------------------------------------------------


#: The receiver answers this many requests, then none until released: the worker is then
#: certainly mid-delivery (its requests in flight) when it is killed.
ANSWERED_BEFORE_CRASH = 8


def test_killed_worker_loses_nothing(database_url: str, tmp_path: Path) -> None:
    with Receiver() as receiver:
        arrivals = itertools.count(1)

        def slow_then_stuck(_path: str, _key: str) -> Reply:
            if next(arrivals) == ANSWERED_BEFORE_CRASH + 1:
                receiver.hold()  # once: after the release, the restarted worker gets answers
            return Reply(200, delay_s=0.3)

        receiver.policy = slow_then_stuck
        asyncio.run(_crash(database_url, receiver, tmp_path))


def spawn_worker(url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CONFIDE_DATABASE_URL": url,
        "CONFIDE_DELIVERY_LEASE_S": "1",
        "CONFIDE_WORKER_POLL_S": "0.1",
        "CONFIDE_DELIVERY_BACKOFF_S": "0.01",
        "CONFIDE_DELIVERY_BACKOFF_MAX_S": "0.05",
    }
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "confide", "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
        )


def end(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _crash(url: str, receiver: Receiver, tmp: Path) -> None:
    ctx = AppContext.build(settings(url))
    await ctx.start()
    try:
        shop = await open_shop(ctx, "Crashing Motors")
        await add_webhook(ctx, shop, receiver.url("/slow"))
        chats = [await lead_chat(ctx, shop, n, "before" if n % 2 else "after") for n in range(20)]
    finally:
        await ctx.stop()
    db = Database(url)
    logs = [tmp / "worker-1.log", tmp / "worker-2.log"]
    first = spawn_worker(url, logs[0])
    second: subprocess.Popen[bytes] | None = None
    try:

        async def stuck() -> bool:
            return len(receiver.requests) > ANSWERED_BEFORE_CRASH and bool(receiver.inflight())

        await wait_for(stuck, "a delivery in flight that gets no answer")
        end(first, signal.SIGKILL)
        unanswered = receiver.inflight()
        receiver.release()
        jobs = {j.idempotency_key: j for j in await jobs_of(db, shop.org_id)}
        assert any(j.state == "done" for j in jobs.values())  # killed mid-way, not at the start
        assert all(jobs[k].state == "running" for k in unanswered)

        second = spawn_worker(url, logs[1])
        await wait_for(lambda: quiet(db, shop.org_id), "the restarted worker to drain")
        end(second)
        jobs = {j.idempotency_key: j for j in await jobs_of(db, shop.org_id)}
        states = await lead_states(db, shop.org_id)
    except BaseException:
        print("\n".join(p.read_text(errors="replace")[-3000:] for p in logs if p.exists()))
        raise
    finally:
        end(first, signal.SIGKILL)
        if second is not None:
            end(second, signal.SIGKILL)
        await db.dispose()

    assert all(j.state == "done" for j in jobs.values())
    stored = receiver.stored_keys()
    assert set(stored) == set(jobs)  # every lead at least once, and nothing else
    assert {lead_of(r.body) for r in receiver.stored()} == {c.lead_id for c in chats}
    for key in unanswered:  # the killed worker's jobs were taken again after the lease
        assert stored[key] >= 2
        assert jobs[key].attempts >= 2
    assert set(states.values()) == {"delivered"}


# --- 3. dead letter and retry -------------------------------------------------------------------


def test_dead_letter_then_retry(database_url: str) -> None:
    statuses = {"/down": 500, "/refuses": 400}
    with Receiver(lambda path, _key: Reply(statuses.get(path, 200))) as receiver:
        asyncio.run(_dead_letter(database_url, receiver, statuses))


async def _dead_letter(url: str, receiver: Receiver, statuses: dict[str, int]) -> None:
    ctx = AppContext.build(settings(url, delivery_max_attempts=3))
    await ctx.start()
    worker = DeliveryWorker(ctx.db, ctx.settings)
    try:
        down, picky = await open_shop(ctx, "Downtime Motors"), await open_shop(ctx, "Picky Motors")
        await add_webhook(ctx, down, receiver.url("/down"))
        await add_webhook(ctx, picky, receiver.url("/refuses"))
        lead_down = (await lead_chat(ctx, down, 0, "after")).lead_id
        lead_picky = (await lead_chat(ctx, picky, 1, "before")).lead_id
        worker.start()
        await wait_for(lambda: quiet(ctx.db, down.org_id, picky.org_id), "dead letters")

        [job] = await jobs_of(ctx.db, down.org_id)
        assert (job.state, job.attempts) == ("dead", 3)
        assert job.last_error is not None and "500" in job.last_error
        assert (await attempts_of(ctx.db, down.org_id))[job.id] == [
            (1, "retry"),
            (2, "retry"),
            (3, "dead"),
        ]
        assert (await lead_states(ctx.db, down.org_id))[lead_down] == "failed"
        assert [r.path for r in receiver.requests].count("/down") == 3
        dead = await ctx.delivery_admin.jobs(down.operator, state="dead")
        assert [d["id"] for d in dead] == [job.id]

        # A refusal (4xx) is final: dead after one attempt.
        [refused] = await jobs_of(ctx.db, picky.org_id)
        assert (refused.state, refused.attempts) == ("dead", 1)
        assert (await attempts_of(ctx.db, picky.org_id))[refused.id] == [(1, "dead")]
        assert (await lead_states(ctx.db, picky.org_id))[lead_picky] == "failed"
        assert [r.path for r in receiver.requests].count("/refuses") == 1

        # The receiver recovers; the console's Retry puts the job back and it goes out.
        statuses["/down"] = 200
        assert (await ctx.delivery_admin.retry(down.operator, job.id))["state"] == "pending"
        assert (await lead_states(ctx.db, down.org_id))[lead_down] == "queued"
        await wait_for(lambda: quiet(ctx.db, down.org_id), "the retried delivery")
        [job] = await jobs_of(ctx.db, down.org_id)
        assert job.state == "done"
        assert (await attempts_of(ctx.db, down.org_id))[job.id][-1] == (1, "delivered")
        assert (await lead_states(ctx.db, down.org_id))[lead_down] == "delivered"
        assert receiver.stored_keys("/down") == {job.idempotency_key: 1}
        with pytest.raises(InvalidState):
            await ctx.delivery_admin.retry(down.operator, job.id)

        # An operator may also send a failed lead again: its dead job is queued once more.
        statuses["/refuses"] = 202
        resent = await ctx.leads.deliver(picky.operator, lead_picky)
        assert resent.delivery_state == "queued"
        await wait_for(lambda: quiet(ctx.db, picky.org_id), "the lead sent again")
        [again] = await jobs_of(ctx.db, picky.org_id)
        assert (again.id, again.state) == (refused.id, "done")
        assert (await lead_states(ctx.db, picky.org_id))[lead_picky] == "delivered"
        assert receiver.stored_keys("/refuses") == {refused.idempotency_key: 1}
    finally:
        await worker.stop()
        await ctx.stop()


# --- 4. two workers at once --------------------------------------------------------------------


def test_two_workers_never_take_the_same_job(database_url: str) -> None:
    with Receiver(always(200, delay_s=0.02)) as receiver:
        asyncio.run(_two_workers(database_url, receiver))


async def _two_workers(url: str, receiver: Receiver) -> None:
    ctx = AppContext.build(settings(url))
    await ctx.start()
    # Each worker has its own engine, as two `confide worker` processes would.
    dbs = [Database(url), Database(url)]
    try:
        shop = await open_shop(ctx, "Busy Motors")
        await add_webhook(ctx, shop, receiver.url("/a"), region="UK")
        await add_webhook(ctx, shop, receiver.url("/b"), region="EU")
        chats = [await lead_chat(ctx, shop, n, "before" if n % 2 else "after") for n in range(20)]
        workers = [DeliveryWorker(db, ctx.settings) for db in dbs]
        claims = [0, 0]

        async def pump(i: int) -> None:
            while not await quiet(ctx.db, shop.org_id):
                ran = await workers[i].run_once()
                claims[i] += ran
                if not ran:
                    await asyncio.sleep(0.01)

        await asyncio.wait_for(asyncio.gather(pump(0), pump(1)), DEADLINE_S)
        for w in workers:
            await w.stop()
        jobs = await jobs_of(ctx.db, shop.org_id)
        attempts = await attempts_of(ctx.db, shop.org_id)
        states = await lead_states(ctx.db, shop.org_id)
    finally:
        for db in dbs:
            await db.dispose()
        await ctx.stop()

    assert len(jobs) == 2 * len(chats)
    assert sum(claims) == len(jobs)  # no job was claimed twice
    assert all((j.state, j.attempts) == ("done", 1) for j in jobs)
    assert all(attempts[j.id] == [(1, "delivered")] for j in jobs)
    stored = receiver.stored_keys()
    assert set(stored) == {j.idempotency_key for j in jobs}
    assert set(stored.values()) == {1}
    assert states == dict.fromkeys((c.lead_id for c in chats), "delivered")


# --- 5. residency ---------------------------------------------------------------------------------


def test_residency_strips_personal_data_outside_uk_eu(database_url: str) -> None:
    with Receiver() as receiver:
        asyncio.run(_residency(database_url, receiver))


async def _residency(url: str, receiver: Receiver) -> None:
    ctx = AppContext.build(settings(url))
    await ctx.start()
    worker = DeliveryWorker(ctx.db, ctx.settings)
    try:
        shop = await open_shop(ctx, "Transatlantic Motors")
        await add_webhook(ctx, shop, receiver.url("/uk"), region="UK")
        await add_webhook(ctx, shop, receiver.url("/us"), region="US")
        chat = await lead_chat(ctx, shop, 7, "after")
        worker.start()
        await wait_for(lambda: quiet(ctx.db, shop.org_id), "both deliveries")
        states = await lead_states(ctx.db, shop.org_id)
    finally:
        await worker.stop()
        await ctx.stop()

    [uk], [us] = receiver.stored("/uk"), receiver.stored("/us")
    full, bare = orjson.loads(uk.body)["lead"], orjson.loads(us.body)["lead"]
    assert full["personal_data_removed"] is False
    assert full["contact"]["email"] == chat.email and full["contact"]["phone"] == chat.phone
    assert full["comments"] and full["transcript"]
    assert bare["personal_data_removed"] is True
    assert bare["contact"] is None and bare["comments"] is None and bare["transcript"] == []
    for personal in (chat.email, chat.phone, chat.name, "Saturday"):
        assert personal.encode() not in us.body
    # What the US destination may know still arrives: the enquiry, the car, the consent.
    assert bare["lead_id"] == chat.lead_id and bare["purpose"] == "test_drive"
    assert bare["vehicle"]["model"] == "Octavia"
    assert bare["consent"]["record_id"] == full["consent"]["record_id"]
    assert states == {chat.lead_id: "delivered"}


# --- 6. consent given again ---------------------------------------------------------------------


def test_consent_given_again_after_withdrawal_delivers_once(database_url: str) -> None:
    with Receiver() as receiver:
        asyncio.run(_regranted(database_url, receiver))


async def _regranted(url: str, receiver: Receiver) -> None:
    ctx = AppContext.build(settings(url))
    await ctx.start()
    worker = DeliveryWorker(ctx.db, ctx.settings)
    try:
        shop = await open_shop(ctx, "Second Thoughts Motors")
        await add_webhook(ctx, shop, receiver.url("/again"))
        chat = await lead_chat(ctx, shop, 3, "withdrawn")
        assert await lead_states(ctx.db, shop.org_id) == {chat.lead_id: "withdrawn"}
        asked = await ctx.leads.request_consent(shop.operator, chat.conversation_id)
        assert asked.request_id is not None
        await ctx.leads.answer_consent(
            chat.visitor, chat.conversation_id, asked.request_id, "granted"
        )
        assert await lead_states(ctx.db, shop.org_id) == {chat.lead_id: "queued"}
        worker.start()
        await wait_for(lambda: quiet(ctx.db, shop.org_id), "the delivery")
        states = await lead_states(ctx.db, shop.org_id)
        jobs = await jobs_of(ctx.db, shop.org_id)
    finally:
        await worker.stop()
        await ctx.stop()

    assert states == {chat.lead_id: "delivered"}
    assert [j.state for j in jobs] == ["done"]
    assert receiver.stored_keys() == {jobs[0].idempotency_key: 1}
    assert [lead_of(r.body) for r in receiver.stored()] == [chat.lead_id]
