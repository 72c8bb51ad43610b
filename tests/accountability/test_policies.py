"""Policy versions (policy 6, R57) on SQLite and PostgreSQL: publishing emails every client admin
and every confirmed subscriber (real SMTP) and puts a message in every inbox; the database refuses
to change a published version; sites keep the version their consent evidence names."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select, text

from confide.accountability.models import NewsletterSubscription, PolicyVersion
from confide.audit.models import AuditEntry
from confide.clock import FrozenClock
from confide.errors import Conflict, Forbidden, InvalidInput, NotFound
from confide.sites.models import Site
from confide.storage.scope import Scope
from tests.accountability.helpers import BASE, World, client_emails, run

POLICY = "1. Introduction\n\nConfide is a data processor. This is version two of our policy.\n"


async def _subscriber(w: World, email: str) -> str:
    """A confirmed subscriber (through the confirmation email, as a person would)."""
    since = len(w.sink.messages)
    await w.acct.newsletter.subscribe(email, base_url=BASE)
    [mail] = w.mail_to(email, since)
    link = re.search(r"https://\S+/newsletter/confirm\?token=\S+", mail.get_content())
    assert link is not None
    token = parse_qs(urlsplit(link.group()).query)["token"][0]
    await w.acct.newsletter.confirm(token)
    return token


def test_publishing_a_version_tells_every_client_admin_and_subscriber(
    database_url: str, clock: FrozenClock
) -> None:
    async def body(w: World) -> None:
        site = await w.ctx.sites.create_site(
            organisation_id=w.org_a, name="Alpha Leeds", origins=["https://alpha.example"]
        )
        await _subscriber(w, "reader@example.com")
        await w.acct.newsletter.subscribe("undecided@example.com", base_url=BASE)  # pending
        since = len(w.sink.messages)
        version = f"v2-{w.org_a[:6]}"

        with pytest.raises(Forbidden):
            await w.acct.policies.publish(w.client_a, version=version, text=POLICY, base_url=BASE)
        done = await w.acct.policies.publish(w.admin, version=version, text=POLICY, base_url=BASE)
        assert done.policy["version"] == version and done.emails_failed == 0

        # Email: every client admin (a notice, no unsubscribe) and each confirmed subscriber
        # (with RFC 8058 one-click headers); not the pending one, not our staff.
        mails = w.sink.messages[since:]
        admins = await client_emails(w.ctx)
        async with w.ctx.db.session(Scope.system(), read_only=True) as s:
            subscribed = len(
                list(
                    await s.scalars(
                        select(NewsletterSubscription.id).where(
                            NewsletterSubscription.state == "subscribed"
                        )
                    )
                )
            )
        assert len(mails) == len(admins) + subscribed == done.emails_sent
        assert {m["To"] for m in mails} >= admins | {"reader@example.com"}
        assert "undecided@example.com" not in {m["To"] for m in mails}
        assert w.admin.email not in {m["To"] for m in mails}
        admin_mail = w.mail_to(w.client_b.email, since)[0]
        assert version in admin_mail["Subject"] and admin_mail["List-Unsubscribe"] is None
        assert f"{BASE}/policy/{version}" in admin_mail.get_content()
        [reader] = w.mail_to("reader@example.com", since)
        assert re.fullmatch(
            rf"<{re.escape(BASE)}/newsletter/unsubscribe\?token=[\w-]+>", reader["List-Unsubscribe"]
        )
        assert reader["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

        # Inbox: one message in each organisation.
        for client in (w.client_a, w.client_b):
            [msg] = [i for i in await w.acct.inbox.messages(client) if i.kind == "policy"]
            assert msg.ref == version and version in msg.title
        assert done.organisations >= 2

        # The newest version is retrievable; sites keep naming their own (consent evidence).
        latest = await w.acct.policies.latest()
        assert latest["version"] == version and latest["text"] == POLICY.strip()
        async with w.ctx.db.session(Scope.system(), read_only=True) as s:
            assert (await s.get(Site, site.id)).policy_version == site.policy_version  # type: ignore[union-attr]
            audit = await s.scalar(
                select(AuditEntry).where(
                    AuditEntry.action == "config.policy.publish", AuditEntry.subject_ref == version
                )
            )
        assert audit is not None and audit.actor_id == w.admin.user_id

        # A version is published once; a bad one never.
        with pytest.raises(Conflict):
            await w.acct.policies.publish(w.admin, version=version, text=POLICY, base_url=BASE)
        with pytest.raises(InvalidInput):
            await w.acct.policies.publish(w.admin, version="v 3", text=POLICY, base_url=BASE)
        with pytest.raises(NotFound):
            await w.acct.policies.get("never-published")

    run(database_url, clock, body)


def test_the_database_refuses_to_change_a_published_version(
    database_url: str, clock: FrozenClock
) -> None:
    async def body(w: World) -> None:
        version = f"v9-{w.org_a[:6]}"
        await w.acct.policies.publish(w.admin, version=version, text=POLICY, base_url=BASE)
        for sql in (
            "UPDATE policy_versions SET text = 'rewritten history' WHERE version = :v",
            "DELETE FROM policy_versions WHERE version = :v",
        ):
            with pytest.raises(Exception, match="policy versions are immutable"):
                async with w.ctx.db.session(Scope.system()) as s:
                    await s.execute(text(sql), {"v": version})
        async with w.ctx.db.session(Scope.system(), read_only=True) as s:
            kept = await s.scalar(select(PolicyVersion).where(PolicyVersion.version == version))
        assert kept is not None and kept.text == POLICY.strip()

    run(database_url, clock, body)
