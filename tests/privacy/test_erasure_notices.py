"""R51: an erasure is complete only once its notices to recipients were delivered.

The notices go through the outbox after the erasure commits; their tasks wait (``pending``) for
the delivery worker, a notice it gives up on fails its task and puts the request in ``error``,
and a notice retried and delivered completes the request.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from confide.accounts.models import Role
from confide.accounts.principal import Principal
from confide.delivery.models import OutboxJob
from confide.privacy.models import ErasureTask
from confide.privacy.service import Intake
from confide.storage.scope import Scope
from confide.testing import free_port
from confide.web.routes.portal_privacy import _detail_view
from tests.leads.helpers import SmtpSink
from tests.privacy.test_rights_e2e import (
    World,
    build_world,
    mails_to,
    run,
    seed_subject,
    verified_and_approved,
)


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


async def _notice_tasks(w: World, request_id: str) -> list[ErasureTask]:
    async with w.ctx.db.session(Scope.system(), read_only=True) as s:
        rows = await s.scalars(
            select(ErasureTask).where(
                ErasureTask.request_id == request_id, ErasureTask.method == "notice"
            )
        )
        return list(rows)


def _admin() -> Principal:
    return Principal(
        "admin", "Admin", "admin@confide.example", Role.ADMIN, None, Scope.system(), frozenset()
    )


def test_a_notice_the_destination_never_takes_leaves_the_request_in_error(
    database_url: str, smtp: SmtpSink
) -> None:
    async def go() -> None:
        w = await build_world(database_url, smtp)
        settings = w.ctx.delivery.settings
        try:
            sub = await seed_subject(w)
            gone = await verified_and_approved(w, Intake("deletion", email=sub.email))
            assert gone.state == "in_processing"

            # The destination's mail relay is down and the worker gives up at the first failure.
            working, attempts = settings.smtp_port, settings.delivery_max_attempts
            settings.smtp_port, settings.delivery_max_attempts = free_port(), 1
            try:
                await w.ctx.delivery.drain()
            finally:
                settings.smtp_port, settings.delivery_max_attempts = working, attempts

            (task,) = await _notice_tasks(w, gone.id)
            assert task.state == "failed" and task.finished_at is not None
            assert task.reason is not None
            assert task.reason.startswith(
                "erasure notice not sent to the destination that received the lead; last error:"
            )
            found = await w.ctx.privacy.detail(w.client, gone.id)
            assert found["state"] == "error" and found["completed_at"] is None
            (shown,) = [t for t in found["tasks"] if t["method"] == "notice"]
            assert (shown["state"], shown["reason"]) == ("failed", task.reason)
            assert found["events"][-1]["to"] == "error"
            # The portal's request page shows it failed, and which notice and why.
            view = _detail_view(found, w.client)
            assert view["state_label"] == "Failed"
            (row,) = [t for t in view["tasks"] if t["method"] == "notice"]
            assert (row["state_label"], row["method_label"]) == ("Failed", "Notice to recipient")
            assert row["store_label"].startswith("Destination ") and view["task_reasons"]
            # The requester is not told it is complete: it is not.
            assert not [b for b in mails_to(smtp, sub.email) if "carried out" in b]

            # Our team retries the dead letter; once delivered, the request completes.
            async with w.ctx.db.session(Scope.system(), read_only=True) as s:
                job = await s.scalar(
                    select(OutboxJob).where(OutboxJob.idempotency_key == task.outbox_key)
                )
            assert job is not None and job.state == "dead"
            await w.ctx.delivery_admin.retry(_admin(), job.id)
            await w.ctx.delivery.drain()
            (task,) = await _notice_tasks(w, gone.id)
            assert (task.state, task.reason) == (
                "done",
                "erasure notice sent to the destination that received the lead",
            )
            found = await w.ctx.privacy.detail(w.client, gone.id)
            assert found["state"] == "complete" and found["completed_at"] is not None
            assert [e["to"] for e in found["events"]][-2:] == ["in_processing", "complete"]
            (told,) = [b for b in mails_to(smtp, sub.email) if "carried out" in b]
            assert "legal hold" not in told
        finally:
            await w.ctx.stop()

    run(go())


def test_a_worker_that_never_reported_is_caught_up_by_the_daily_pass(
    database_url: str, smtp: SmtpSink
) -> None:
    """The worker in another process tells the request through a hook; if that is lost (the
    process stopped between the two), the daily pass settles the request from the outbox."""

    async def go() -> None:
        w = await build_world(database_url, smtp)
        try:
            sub = await seed_subject(w)
            gone = await verified_and_approved(w, Intake("deletion", email=sub.email))
            w.ctx.delivery.on_notice_settled = None
            await w.ctx.delivery.drain()
            (task,) = await _notice_tasks(w, gone.id)
            assert task.state == "pending"
            await w.ctx.privacy.remind()
            (task,) = await _notice_tasks(w, gone.id)
            assert task.state == "done"
            found = await w.ctx.privacy.detail(w.client, gone.id)
            assert found["state"] == "complete"
            assert [b for b in mails_to(smtp, sub.email) if "carried out" in b]
        finally:
            await w.ctx.stop()

    run(go())
